"""Tests of the synth and effect modules: measured levels and responses, controls, gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from midi_ddsp.synthesis.ddsp import functional as DF
from midi_ddsp.synthesis.ddsp.effects import Reverb
from midi_ddsp.synthesis.ddsp.synths import FilteredNoise, HarmonicSynth

SR = 16000


# ------------------------------------------------------------------------------------------------- harmonic
def test_harmonic_controls_normalise_below_nyquist():
    synth = HarmonicSynth(n_harmonics=60, fade_start=None)
    f0 = torch.tensor([[[200.0], [1000.0]]])
    raw_amp, raw_harm = torch.zeros(1, 2, 1), torch.randn(1, 2, 60)
    amp, dist, f0_out = synth.get_controls(raw_amp, raw_harm, f0, SR)
    assert torch.equal(f0_out, f0)
    np.testing.assert_allclose(amp.numpy(), DF.exp_sigmoid(raw_amp).numpy())
    np.testing.assert_allclose(dist.sum(-1).numpy(), 1.0, rtol=1e-6)
    assert torch.all(dist[0, 1, 7:] == 0) and torch.all(dist[0, 1, :7] > 0)  # 8 x 1000 Hz = Nyquist
    assert torch.all(dist[0, 0, :39] > 0) and torch.all(dist[0, 0, 39:] == 0)  # 40 x 200 Hz = Nyquist
    # with the fade, harmonics inside the fade band are weighted down before normalising
    _, dist_fade, _ = HarmonicSynth(60).get_controls(raw_amp, torch.zeros(1, 2, 60), f0, SR)
    gain = DF.nyquist_gain(1000.0 * torch.arange(1, 8), SR)
    np.testing.assert_allclose(dist_fade[0, 1, :7].numpy(), (gain / gain.sum()).numpy(), rtol=1e-5)


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_harmonic_level_and_frequency(sample_rate):
    """A steady tone of amplitude A with distribution d has rms A * sqrt(sum d^2 / 2) and the asked f0."""
    n = sample_rate
    amp = torch.full((1, 100, 1), 0.5)
    dist = torch.tensor([0.6, 0.3, 0.1]).expand(1, 100, 3)
    y = HarmonicSynth(3)(amp, dist, torch.full((1, 100, 1), 330.0), n, sample_rate)[0].numpy()
    assert np.sqrt(np.mean(y**2)) == pytest.approx(0.5 * math.sqrt((0.36 + 0.09 + 0.01) / 2), rel=1e-3)
    spec = np.abs(np.fft.rfft(y * np.hanning(n)))
    assert np.argmax(spec) * sample_rate / n == pytest.approx(330.0, abs=1.0)


def test_harmonic_gradients_reach_every_control():
    synth = HarmonicSynth(8)
    raw_amp = torch.randn(2, 20, 1, requires_grad=True)
    raw_harm = torch.randn(2, 20, 8, requires_grad=True)
    f0 = torch.full((2, 20, 1), 440.0, requires_grad=True)
    controls = synth.get_controls(raw_amp, raw_harm, f0, SR)
    y = synth(*controls, 1280, SR)
    target = torch.randn(2, 1280)
    ((y - target) ** 2).mean().backward()
    for name, x in [("raw_amp", raw_amp), ("raw_harm", raw_harm), ("f0", f0)]:
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
        assert (x.grad.abs().sum((0, 2)) > 0).float().mean() > 0.9, name  # nearly every frame gets a gradient


# -------------------------------------------------------------------------------------------------------- noise
def test_noise_filter_measured_response_within_1_db():
    """Transfer function measured by Welch cross-spectra (scipy) from the known excitation to the output."""
    n_bands = 65
    freqs = np.linspace(0, SR / 2, n_bands)
    target_db = -12 * freqs / (SR / 2) + 4 * np.sin(2 * np.pi * freqs / 5000)  # smooth slope with ripples
    mags = torch.tensor(10 ** (target_db / 20), dtype=torch.float32).expand(1, 250 * 8, n_bands)
    n = 8 * SR
    noise = torch.rand(1, n, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = FilteredNoise(n_bands)(mags, n, noise=noise)[0].numpy()
    f, pxy = signal.csd(noise[0].numpy(), y, fs=SR, nperseg=512)
    _, pxx = signal.welch(noise[0].numpy(), fs=SR, nperseg=512)
    measured_db = 20 * np.log10(np.abs(pxy / pxx))
    at_bands = np.interp(freqs, f, measured_db)
    assert np.abs(at_bands - target_db).max() < 1.0


def test_noise_follows_frames_without_delay():
    """Silent for 125 frames, then white: the noise starts at sample 125 * 64 (within the one-hop crossfade
    and the filter's half length), i.e. the filter latency is compensated."""
    mags = torch.zeros(1, 250, 65)
    mags[:, 125:] = 1.0
    y = FilteredNoise()(mags, 16000, generator=torch.Generator().manual_seed(1))[0]
    onset = 125 * 64
    assert y[: onset - 64 - 64].abs().max() < 1e-6
    assert y[onset + 128 :].std() == pytest.approx(1 / math.sqrt(3), rel=0.05)  # uniform [-1, 1) noise


def test_noise_generator_reproducible_and_gradients():
    noise = FilteredNoise()
    raw = torch.randn(2, 50, 65, requires_grad=True)
    mags = noise.get_controls(raw)
    np.testing.assert_allclose(mags.detach().numpy(), DF.exp_sigmoid(raw.detach() - 5).numpy())
    a = noise(mags, 3200, generator=torch.Generator().manual_seed(3))
    b = noise(mags, 3200, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a.pow(2).mean().backward()
    assert torch.isfinite(raw.grad).all() and (raw.grad.abs().sum(-1) > 0).all()


# ------------------------------------------------------------------------------------------------------- reverb
def test_reverb_unit_impulse_is_identity():
    x = torch.randn(2, 8000)
    reverb = Reverb(n_irs=2, ir_length=4000)
    impulse = torch.zeros(4000)
    impulse[0] = 1.0
    np.testing.assert_allclose(reverb(x, ir=impulse).numpy(), x.numpy(), atol=1e-6)  # direct path = dry
    np.testing.assert_allclose(reverb(x, ir=impulse, add_dry=False).numpy(), x.numpy(), atol=1e-5)
    assert torch.equal(reverb(x, wet=False), x)


def test_reverb_bank_selects_per_item_ir_and_matches_convolution():
    reverb = Reverb(n_irs=3, ir_length=500, init_gain=0.1, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 2000, dtype=torch.float64)
    y = reverb(x, torch.tensor([2, 0])).detach().numpy()
    irs = reverb.irs.detach().double().numpy()
    for b, i in enumerate([2, 0]):
        h = irs[i].copy()
        h[0] = 0.0
        np.testing.assert_allclose(y[b], x[b].numpy() + np.convolve(x[b].numpy(), h)[:2000], atol=1e-6)


def test_reverb_init_decays_and_gradients_reach_used_irs():
    reverb = Reverb(n_irs=3, ir_length=48000)
    assert reverb.irs.shape == (3, 48000)
    early, late = reverb.irs[:, :8000].detach().std(), reverb.irs[:, -8000:].detach().std()
    assert late < early / 100
    x = torch.randn(2, 4000, requires_grad=True)
    reverb(x, torch.tensor([1, 1])).pow(2).sum().backward()
    grad = reverb.irs.grad
    assert grad[1, 1:4000].abs().min() > 0 and grad[[0, 2]].abs().max() == 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().min() > 0
