"""The partials' gain over frequency (synthesis/heads.py FrequencyEnvelope) and warm-starting into it."""
from __future__ import annotations

import math

import torch

from midi_ddsp.synthesis.heads import ENVELOPE_HIGH_HZ, ENVELOPE_LOW_HZ, FrequencyEnvelope, SynthParamsHead

SR = 48000.0


def _head(points=37, width=8):
    torch.manual_seed(0)
    return SynthParamsHead(width, n_harmonics=96, n_noise_bands=129, envelope_points=points)


def _grid_hz(points):
    return ENVELOPE_LOW_HZ * (ENVELOPE_HIGH_HZ / ENVELOPE_LOW_HZ) ** (torch.arange(points) / (points - 1))


def test_a_new_envelope_changes_nothing():
    with_env, plain = _head(), _head(points=0)
    plain.proj.load_state_dict(with_env.proj.state_dict())
    x, f0 = torch.randn(2, 50, 8), torch.full((2, 50, 1), 220.0)
    a, b = with_env(x, f0, SR, 250.0), plain(x, f0, SR, 250.0)
    assert torch.equal(a.harmonic_distribution, b.harmonic_distribution)


def test_a_cut_above_5_khz_stays_at_5_khz_whatever_the_note():
    """Gain -40 dB on the grid points above 5 kHz: every partial above the next grid point is 40 dB weaker
    relative to those below 5 kHz than without the envelope, for a low and a high note alike."""
    head = _head()
    points = head.envelope.n_points
    above = _grid_hz(points) > 5000.0
    with torch.no_grad():
        head.envelope.proj.bias[above] = -2.0 / FrequencyEnvelope.LOG_GAIN_SCALE   # log10 -2: -40 dB
    plain = _head(points=0)
    plain.proj.load_state_dict(head.proj.state_dict())
    first_above = float(_grid_hz(points)[above][0])
    last_below = float(_grid_hz(points)[~above][-1])
    x = torch.randn(1, 4, 8)
    for f0_hz in (110.0, 622.0):
        f0 = torch.full((1, 4, 1), f0_hz)
        cut = head(x, f0, SR, 250.0).harmonic_distribution[0]
        ref = plain(x, f0, SR, 250.0).harmonic_distribution[0]
        k_hz = f0_hz * torch.arange(1, 97)
        hi = (k_hz >= first_above) & (k_hz < SR / 2)
        lo = k_hz <= last_below
        ratio_db = 20 * torch.log10(cut / ref)
        rel = ratio_db[:, hi] - ratio_db[:, lo].mean(-1, keepdim=True)
        assert torch.allclose(rel, torch.full_like(rel, -40.0), atol=0.01), f0_hz


def test_gradient_reaches_the_envelope():
    head = _head()
    x, f0 = torch.randn(1, 20, 8), torch.full((1, 20, 1), 330.0)
    p = head(x, f0, SR, 250.0)
    (p.harmonic_distribution[..., 20:] ** 2).sum().backward()   # partials 21+ (6.9 kHz up)
    g = head.envelope.proj.bias.grad
    assert g is not None and g.abs().max() > 0
    # only grid points next to a partial's frequency get gradient
    hz = _grid_hz(head.envelope.n_points)
    assert g[hz < 330.0 / 2 ** (math.log2(ENVELOPE_HIGH_HZ / ENVELOPE_LOW_HZ) / 36)].abs().max() == 0


def test_warm_start_into_a_generator_with_an_envelope(tmp_path):
    from midi_ddsp.training.generator_task import GeneratorTask
    from midi_ddsp.training.runner import warm_start

    torch.manual_seed(0)
    old = GeneratorTask(width=16, f0_hidden=16, reverb_length=100, sample_rate=16000)
    old.export(tmp_path / "g.safetensors")
    new = GeneratorTask(width=16, f0_hidden=16, reverb_length=100, sample_rate=16000, envelope_points=37)
    warm_start(new, str(tmp_path / "g.safetensors"))
    a, b = old.model.state_dict(), new.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.count_nonzero(new.model.head.envelope.proj.weight) == 0
