"""Synthesis-level models: shapes, learning on one clip, f0 sampling range and reproducibility."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import Note, NoteSequence
from midi_ddsp.training.analysis_task import AnalysisTask
from midi_ddsp.conditioning import batch_inputs, frame_inputs, held_pitch
from midi_ddsp.synthesis.ddsp.functional import hz_to_midi
from midi_ddsp.synthesis.generator import SynthesisGenerator
from midi_ddsp.training.generator_task import GeneratorTask
from midi_ddsp.training.synthetic import SyntheticTones

SR, FR = 16000, 250


def _batch(n=2, seconds=0.5):
    data = SyntheticTones(n_items=n, clip_seconds=seconds)
    items = [data[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def test_residual_dilated_conv_equals_a_plain_conv1d_with_the_same_weights():
    """The channels-last conv2d path against torch's Conv1d on the transposed signal, values and gradients."""
    from midi_ddsp.synthesis.layers import ResidualDilatedConv

    torch.manual_seed(0)
    for dilation in (1, 4):
        block = ResidualDilatedConv(8, 3, dilation)
        x = torch.randn(2, 37, 8, requires_grad=True)
        h = torch.nn.functional.leaky_relu(block.norm(x), 0.2)
        want = x + block.conv(h.transpose(1, 2)).transpose(1, 2)
        got = block(x)
        assert got.shape == x.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        g_want = torch.autograd.grad(want.square().sum(), block.conv.weight)[0]
        g_got = torch.autograd.grad(got.square().sum(), block.conv.weight)[0]
        torch.testing.assert_close(g_got, g_want, atol=1e-4, rtol=1e-4)


def test_analysis_task_shapes_and_gradients():
    task = AnalysisTask(n_mels=16, width=16, instrument_dim=4, reverb_length=2000, sample_rate=16000)
    batch = _batch()
    params = task(batch["audio"], batch["true_f0_hz"], batch["instrument_id"])
    frames = batch["true_f0_hz"].shape[1]
    assert params.amplitude.shape == (2, frames, 1)
    assert params.harmonic_distribution.shape == (2, frames, 60)
    assert params.noise_magnitudes.shape == (2, frames, 65)
    # distribution sums to 1 over the harmonics below Nyquist
    assert torch.allclose(params.harmonic_distribution.sum(-1), torch.ones(2, frames), atol=1e-4)
    loss = task.loss(task.resynthesize(batch), batch["audio"])
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in task.model.parameters() if p.requires_grad)


def test_perturb_timbre_tilts_each_note_and_leaves_rests():
    from midi_ddsp.training.analysis_task import perturb_timbre
    from midi_ddsp.synthesis.params import SynthParams

    torch.manual_seed(0)
    f, h, k = 40, 10, 5
    note_index = torch.tensor([[-1] * 5 + [0] * 15 + [-1] * 5 + [1] * 15])
    harm = torch.softmax(torch.randn(1, f, h), -1)
    noise = torch.rand(1, f, k) * 0.01
    p = SynthParams(torch.full((1, f, 1), 220.0), torch.full((1, f, 1), 0.1), harm, noise, FR)
    q = perturb_timbre(p, note_index, tilt=1.0, noise_db=12.0, generator=torch.Generator().manual_seed(3))
    rest = note_index[0] < 0
    torch.testing.assert_close(q.harmonic_distribution[0, rest], harm[0, rest])
    assert torch.equal(q.noise_magnitudes[0, rest], noise[0, rest])
    assert torch.allclose(q.harmonic_distribution.sum(-1), torch.ones(1, f), atol=1e-5)
    ratio = torch.log(q.harmonic_distribution / harm)  # = g log k + const per frame
    kk = torch.log(torch.arange(1, h + 1, dtype=torch.float32))
    for note in (0, 1):
        frames = ratio[0, note_index[0] == note]
        g = (frames[:, -1] - frames[:, 0]) / (kk[-1] - kk[0])
        assert torch.allclose(g, g[0].expand_as(g), atol=1e-4) and abs(g[0]) <= 1.0  # one tilt per note
        torch.testing.assert_close(frames, g[:, None] * kk + (frames[:, :1] - g[:, None] * kk[0]), atol=1e-4, rtol=0)
        gain_db = 20 * torch.log10(q.noise_magnitudes[0, note_index[0] == note] / noise[0, note_index[0] == note])
        assert torch.allclose(gain_db, gain_db[0, 0].expand_as(gain_db), atol=1e-3) and abs(gain_db[0, 0]) <= 12.0


def test_analysis_synthetic_inversion_loss_trains_the_network_and_takes_a_reverb(tmp_path):
    task = AnalysisTask(n_mels=16, width=16, instrument_dim=4, reverb_length=2000, sample_rate=16000, synthetic_weight=1.0)
    batch = _batch()
    batch["note_index"] = torch.where(torch.arange(batch["true_f0_hz"].shape[1]) < 60, 0, 1)[None].expand(2, -1)
    params = task(batch["audio"], batch["true_f0_hz"], batch["instrument_id"])
    synthetic = task.synthetic_loss(params, batch)
    assert torch.isfinite(synthetic) and synthetic.item() > 0
    synthetic.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.model.parameters())
    assert all(p.grad is None for p in task.synth.parameters())  # the target audio is made without gradients
    # initialize_from takes the reverb bank of an exported analysis model
    other = AnalysisTask(n_mels=16, width=16, instrument_dim=4, reverb_length=2000, sample_rate=16000)
    with torch.no_grad():
        for p_ in other.synth.reverb.parameters():
            p_.add_(1.0)
    other.export(tmp_path / "a.safetensors")
    task.initialize_from(str(tmp_path / "a.safetensors"))
    for a, b in zip(task.synth.reverb.parameters(), other.synth.reverb.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_analysis_overfits_one_clip():
    torch.manual_seed(0)
    task = AnalysisTask(n_mels=0, width=32, instrument_dim=4, reverb_length=2000, sample_rate=16000)
    batch = _batch(1)
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = task.loss(task.resynthesize(batch), batch["audio"])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_generator_loss_falls_on_one_clip():
    torch.manual_seed(0)
    task = GeneratorTask(width=32, instrument_dim=4, f0_hidden=32, reverb_length=2000, sample_rate=16000)
    batch = _batch(1)
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for step in range(25):
        opt.zero_grad()
        losses = task.losses(batch)
        losses["total"].backward()
        opt.step()
        first = first or {k: v.item() for k, v in losses.items()}
    assert losses["f0_ce"].item() < 0.7 * first["f0_ce"]
    assert losses["spectral"].item() < first["spectral"]


def _inputs(pitches=(60, 67, 72), seconds=3.0):
    notes = tuple(Note(p, 0.2 + i * 0.9, 0.2 + i * 0.9 + 0.8) for i, p in enumerate(pitches))
    frames = notes_to_frames(NoteSequence(notes, "violin"), int(seconds * FR))
    return batch_inputs([frame_inputs(frames, np.full((len(notes), 6), 0.5))], [0]), frames


def test_sampled_f0_stays_inside_the_notes_range():
    torch.manual_seed(0)
    gen = SynthesisGenerator(width=16, instrument_dim=4, f0_hidden=16).eval()
    inputs, frames = _inputs()
    params = gen.generate(inputs, SR, FR, temperature=1.5, generator=torch.Generator().manual_seed(1))
    dev = hz_to_midi(params.f0_hz)[0, :, 0] - inputs.held_pitch[0, :, 0]
    assert dev.abs().max() <= gen.f0.max_semitones + 1e-4
    # rests hold the neighbouring note's pitch: f0 never drops to 0 Hz
    assert (params.f0_hz > 200).all()
    held = held_pitch(frames.note_index, frames.pitch)
    assert np.array_equal(held[frames.note_index >= 0], frames.pitch[frames.note_index >= 0])
    assert np.all(held[:50] == 60)  # the leading rest holds the first note's pitch


def test_same_seed_same_parameters_and_temperature_zero_is_deterministic():
    gen = SynthesisGenerator(width=16, instrument_dim=4, f0_hidden=16).eval()
    inputs, _ = _inputs()
    a = gen.generate(inputs, SR, FR, generator=torch.Generator().manual_seed(3))
    b = gen.generate(inputs, SR, FR, generator=torch.Generator().manual_seed(3))
    c = gen.generate(inputs, SR, FR, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.f0_hz, b.f0_hz) and torch.equal(a.amplitude, b.amplitude)
    assert not torch.equal(a.f0_hz, c.f0_hz)
    z1 = gen.generate(inputs, SR, FR, temperature=0.0, generator=torch.Generator().manual_seed(3))
    z2 = gen.generate(inputs, SR, FR, temperature=0.0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(z1.f0_hz, z2.f0_hz)


def test_sampler_matches_torch_gru_teacher_forced_logits():
    """The fast NumPy sampling loop computes the same recurrence as the trained nn.GRU."""
    torch.manual_seed(0)
    gen = SynthesisGenerator(width=16, instrument_dim=4, f0_hidden=16).eval()
    inputs, _ = _inputs()
    with torch.no_grad():
        cond = gen.f0.pool(gen.conditioning(inputs))
        bins = gen.f0.sample(cond, temperature=0.0)
        logits = gen.f0.logits(cond, bins)
    assert torch.equal(logits.argmax(-1), bins)


def _wet_to_dry_db(task: AnalysisTask) -> float:
    """Energy of the reverb bank's impulse responses (taps after the direct sound), in dB re the dry path."""
    return float(10 * torch.log10(task.synth.reverb.irs.detach()[:, 1:].pow(2).sum(-1).mean()))


def test_reverb_bank_stays_dry_on_dry_audio():
    # Dry training audio: the regularised bank (slower learning rate + L1 price) must stay far quieter than an
    # unregularised one, which Adam grows tap by tap into a loud "room" that carries part of the sound.
    def train(**reverb):
        torch.manual_seed(0)
        task = AnalysisTask(n_mels=0, width=16, instrument_dim=4, reverb_length=4000, sample_rate=16000, learning_rate=3e-3, **reverb)
        opt = task.configure_optimizers()["optimizer"]
        batch = _batch(2)
        for _ in range(40):
            opt.zero_grad()
            loss = task.loss(task.resynthesize(batch), batch["audio"])
            (loss + task.hparams.reverb_l1 * task.synth.reverb.irs.abs().sum(-1).mean()).backward()
            opt.step()
        return _wet_to_dry_db(task)

    free = train(reverb_l1=0.0, reverb_lr_scale=1.0)
    regularised = train()
    assert free > -10.0                     # the failure mode this guards against
    assert regularised < free - 15.0
