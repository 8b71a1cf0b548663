"""Counterfactual control consistency: torch re-extraction equals the numpy extractor, and training with it
teaches a generator to carry a control it is given."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midi_ddsp.note_level.expression import ControlNormalizer, extract_controls
from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence
from midi_ddsp.conditioning import batch_inputs, frame_inputs
from midi_ddsp.training.control_consistency import (DIFFERENTIABLE_CONTROLS, counterfactual_controls, note_controls,
                                                     segment_mean, to_frames)
from midi_ddsp.training.generator_task import GeneratorTask
from midi_ddsp.synthesis.params import SynthParams

FR = 250
COLS = [CONTROL_NAMES.index(n) for n in DIFFERENTIABLE_CONTROLS]


def _sequence():
    # a 6-frame note (shorter than the 10-frame attack window), a rest, legato notes, a long note
    notes = (Note(60, 0.10, 0.124), Note(62, 0.3, 0.7), Note(64, 0.7, 1.1), Note(67, 1.3, 2.6))
    return NoteSequence(notes, "violin")


def test_torch_controls_equal_the_numpy_extractor():
    rng = np.random.default_rng(0)
    n_frames = 700
    frames = notes_to_frames(_sequence(), n_frames, FR)
    f0 = np.full((1, n_frames, 1), 220.0)
    amp = rng.uniform(1e-5, 0.5, (1, n_frames, 1))
    harm = rng.uniform(0, 1, (1, n_frames, 60)) ** 4
    noise = rng.uniform(1e-5, 0.05, (1, n_frames, 65))
    params = SynthParams(*(torch.tensor(x, dtype=torch.float64) for x in (f0, amp, harm, noise)), frame_rate=FR)
    note_id = torch.from_numpy(frames.note_index)[None]
    got = note_controls(params, note_id, frames.n_notes, peak_temperature_db=1e-6)[0].numpy()
    want = extract_controls(f0, amp, harm, noise, frames)[:, COLS]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_soft_peak_position_finds_a_swell_and_has_a_gradient():
    """A note whose level swells to its peak 30% of the way in (a parabola in dB) and fades: the softmax
    peak position (1 dB temperature) reads 0.3, as the argmax does, and is differentiable."""
    n_frames = 300
    frames = notes_to_frames(NoteSequence((Note(60, 0.2, 1.0),), "violin"), n_frames, FR)
    on = frames.note_index >= 0
    pos = np.cumsum(on) - 1
    level_db = np.where(on, -20.0 - 60.0 * ((pos / on.sum()) - 0.3) ** 2, -80.0)
    amp = torch.tensor(10 ** (level_db / 20), dtype=torch.float64)[None, :, None].requires_grad_(True)
    ones = torch.ones(1, n_frames, 60, dtype=torch.float64)
    params = SynthParams(torch.full((1, n_frames, 1), 262.0, dtype=torch.float64), amp, ones / 60,
                         ones[..., :1].expand(1, n_frames, 65) * 1e-3, frame_rate=FR)
    k = DIFFERENTIABLE_CONTROLS.index("vol_peak_pos")
    soft = note_controls(params, torch.from_numpy(frames.note_index)[None], 1)[0, 0, k]
    hard = extract_controls(262.0 * np.ones(n_frames), amp.detach().numpy()[0], ones[0].numpy(),
                            np.full((n_frames, 65), 1e-3), frames)[0, CONTROL_NAMES.index("vol_peak_pos")]
    assert abs(soft.item() - 0.3) < 0.02 and abs(hard - 0.3) < 0.02
    soft.backward()
    assert amp.grad.abs().sum() > 0


def test_counterfactual_draws_touch_only_present_notes_and_chosen_controls():
    real = torch.rand(3, 5, 6)
    present = torch.rand(3, 5) < 0.6
    out = counterfactual_controls(real, present, p=1.0, generator=torch.Generator().manual_seed(0))
    others = [c for c in range(6) if c not in COLS]
    assert torch.equal(out[..., others], real[..., others])
    assert torch.equal(out[~present], real[~present])
    assert (out[present][:, COLS] != real[present][:, COLS]).all()
    assert torch.equal(counterfactual_controls(real, present, p=0.0), real)


def test_segment_mean_of_frame_features_recovers_note_values():
    frames = notes_to_frames(_sequence(), 700, FR)
    controls = np.random.default_rng(1).uniform(0, 1, (frames.n_notes, 6)).astype(np.float32)
    features = torch.from_numpy(frame_inputs(frames, controls)["features"])[None]
    got = segment_mean(features[..., :6], torch.from_numpy(frames.note_index)[None], frames.n_notes)[0]
    np.testing.assert_allclose(got.numpy(), controls, atol=1e-5)


def _task_and_batch(**kwargs):
    task = GeneratorTask(width=32, instrument_dim=4, f0_hidden=16, reverb_length=1000, sample_rate=16000, consistency_weight=1.0,
                         **kwargs)
    low = np.tile([-60.0, 0.0, 0.0, 0.0, 1.5, -70.0], (14, 1))
    high = np.tile([-10.0, 10.0, 1.0, 1.0, 8.0, -30.0], (14, 1))
    task.attach_normalizer(ControlNormalizer(low, high).to_dict())
    seq = NoteSequence(tuple(Note(60 + 2 * i, 0.1 + 0.3 * i, 0.35 + 0.3 * i) for i in range(6)), "violin")
    frames = notes_to_frames(seq, 500, FR)
    inputs = batch_inputs([frame_inputs(frames, np.full((frames.n_notes, 6), 0.5))] * 4, [0, 1, 2, 3])
    note_id = torch.from_numpy(frames.note_index)[None].expand(4, -1)
    return task, inputs, note_id, torch.full((4, 500, 1), 262.0)


def test_consistency_loss_reaches_the_amplitude_and_harmonic_outputs():
    torch.manual_seed(0)
    task, inputs, note_id, f0 = _task_and_batch(counterfactual_p=1.0)
    loss = task.consistency_loss(inputs, note_id, f0)
    assert 0 < loss.item() < 10
    loss.backward()
    grad = task.model.head.proj.weight.grad
    assert torch.isfinite(grad).all()
    assert grad[0].abs().sum() > 0 and grad[1:61].abs().sum() > 0  # amplitude row, harmonic rows
    # without a control normaliser the loss cannot be normalised: a clear error, not a silent zero
    bare = GeneratorTask(width=16, instrument_dim=4, f0_hidden=16, reverb_length=1000, sample_rate=16000, consistency_weight=1.0)
    with pytest.raises(RuntimeError, match="normalizer"):
        bare.consistency_loss(inputs, note_id, f0)
    with pytest.raises(ValueError, match="vibrato"):
        GeneratorTask(consistency_controls=("vibrato",))


@pytest.mark.slow
def test_consistency_training_makes_brightness_follow_its_control():
    """Only the consistency loss, on a tiny generator: the brightness measured from its parameters must come to
    track the brightness control it is given (it starts uncorrelated)."""
    torch.manual_seed(0)
    task, inputs, note_id, f0 = _task_and_batch(counterfactual_p=1.0, consistency_controls=("brightness",))
    n_notes = int(note_id.max()) + 1
    opt = torch.optim.Adam(task.model.parameters(), lr=3e-3)

    def brightness_r() -> float:
        with torch.no_grad():
            want = torch.rand(4, n_notes)
            ctl = torch.full((4, n_notes, 6), 0.5)
            ctl[..., CONTROL_NAMES.index("brightness")] = want
            feats = torch.cat([to_frames(ctl, note_id), inputs.features[..., 6:]], -1)
            edited = type(inputs)(feats, inputs.held_pitch, inputs.in_note, inputs.instrument)
            p = task.model.timbre_params(task.model.conditioning(edited), edited, f0, 16000.0, float(FR))
            got = note_controls(p, note_id, n_notes)[..., DIFFERENTIABLE_CONTROLS.index("brightness")]
        return float(np.corrcoef(want.flatten().numpy(), got.flatten().numpy())[0, 1])

    before = brightness_r()
    first = None
    for _ in range(400):
        opt.zero_grad()
        loss = task.consistency_loss(inputs, note_id, f0)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    assert abs(before) < 0.5 and brightness_r() > 0.8
