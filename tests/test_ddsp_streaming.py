"""The streaming synthesizer and the processor chain: blocks of any size join seamlessly and equal the
whole-signal ops; the oscillator's phase is carried (a chirp against an analytic float64 sine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midi_ddsp.synthesis.ddsp import functional as DF
from midi_ddsp.synthesis.ddsp.effects import Reverb, ReverbControls
from midi_ddsp.synthesis.ddsp.processors import Chain, ChainControls, Sum
from midi_ddsp.synthesis.ddsp.streaming import ConvolutionStream, FIRStream, HarmonicStream
from midi_ddsp.synthesis.ddsp.synths import FilteredNoise, HarmonicControls, HarmonicSynth, NoiseControls

SR, HOP = 16000, 64
CUTS = [[0, 1, 2, 3, 97, 98, 250], [0, 125, 250], [0, 250], [0, 13, 14, 200, 249, 250]]


def _blocks(cuts, make_block, stream):
    out = [stream.process(*make_block(a, b)) for a, b in zip(cuts[:-1], cuts[1:])]
    return torch.cat(out + [stream.flush()], -1)


def _controls(batch=2, frames=250, harmonics=20, bands=33, seed=0):
    g = torch.Generator().manual_seed(seed)
    f0 = torch.linspace(110.0, 1500.0, frames)[None, :, None].repeat(batch, 1, 1)
    amp = torch.rand(batch, frames, 1, generator=g) * 0.5
    amp[:, 100:140] = 0.0  # a silent stretch inside
    dist = torch.softmax(torch.randn(batch, frames, harmonics, generator=g), -1)
    mags = torch.rand(batch, frames, bands, generator=g) * 0.05
    mags[:, 150:] = 0.0  # noise off for the rest
    noise = torch.rand(batch, frames * HOP, generator=g) * 2 - 1
    return f0, amp, dist, mags, noise


@pytest.mark.parametrize("cuts", CUTS)
def test_harmonic_stream_equals_whole_oscillator(cuts):
    f0, amp, dist, _, _ = _controls()
    whole = DF.harmonic_oscillator(f0, amp * dist, 250 * HOP, SR)
    y = _blocks(cuts, lambda a, b: (f0[:, a:b], (amp * dist)[:, a:b]), HarmonicStream(HOP, SR))
    assert y.shape == whole.shape
    assert (y - whole).abs().max() < 1e-5


def test_carried_phase_follows_an_analytic_chirp_over_many_blocks():
    f0 = np.linspace(200.0, 900.0, 2000).astype(np.float32)  # 8 s glide in 37-frame blocks
    stream = HarmonicStream(HOP, SR)
    f0_t = torch.from_numpy(f0)[None, :, None]
    amps = torch.full((1, 2000, 1), 0.5)
    cuts = list(range(0, 2000, 37)) + [2000]
    y = _blocks(cuts, lambda a, b: (f0_t[:, a:b], amps[:, a:b]), stream)[0].numpy()
    pos = np.arange(2000 * HOP) / HOP
    ref = 0.5 * np.sin(2 * np.pi * np.cumsum(np.interp(pos, np.arange(2000), f0.astype(np.float64)) / SR))
    assert np.max(np.abs(y - ref)) < 2e-3
    assert np.abs(np.diff(y)).max() <= 0.5 * 2 * np.pi * 900 / SR * 1.05  # no clicks at the joins


@pytest.mark.parametrize("cuts", CUTS)
def test_fir_stream_equals_whole_windowed_filter(cuts):
    _, _, _, mags, noise = _controls()
    irs = DF.frequency_impulse_response(mags)
    whole = DF.ltv_fir_filter(noise, irs, delay=irs.shape[-1] // 2)
    stream = FIRStream(HOP, delay=irs.shape[-1] // 2)
    y = _blocks(cuts, lambda a, b: (noise[:, a * HOP:b * HOP], irs[:, a:b]), stream)
    assert y.shape == whole.shape
    assert (y - whole).abs().max() < 1e-6


def test_convolution_stream_equals_numpy_convolution_and_keeps_silence_exact():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 9000, generator=g)
    x[:, 3000:] = 0.0
    ir = torch.randn(1, 700, generator=g) * 0.1
    ref = np.convolve(x[0].numpy().astype(np.float64), ir[0].numpy().astype(np.float64))[:9000]
    stream = ConvolutionStream(ir)
    y = torch.cat([stream.process(x[:, a:b]) for a, b in ((0, 100), (100, 2999), (2999, 5000), (5000, 9000))], -1)
    np.testing.assert_allclose(y[0].numpy(), ref, atol=1e-5)
    assert torch.all(y[:, 3000 + 700:] == 0)  # after the input and its tail: exactly silent


@pytest.mark.parametrize("cuts", CUTS)
def test_chain_stream_equals_whole_chain_with_noise_and_reverb(cuts):
    f0, amp, dist, mags, noise = _controls()
    harmonic, filtered, reverb = HarmonicSynth(20), FilteredNoise(33), Reverb(2, 1200)
    chain = Chain(Sum(harmonic, filtered), reverb)

    def controls(a, b):
        return ChainControls((HarmonicControls(amp[:, a:b], dist[:, a:b], f0[:, a:b]),
                              NoiseControls(mags[:, a:b], noise[:, a * HOP:b * HOP])),
                             (ReverbControls(reverb.select(torch.tensor([0, 1]))),))

    with torch.no_grad():
        whole = chain.render(controls(0, 250), 250 * HOP, SR)
        y = _blocks(cuts, lambda a, b: (controls(a, b),), chain.stream(HOP, SR))
    assert y.shape == whole.shape
    assert (y - whole).abs().max() < 1e-5 * max(1.0, float(whole.abs().max()))
    dry = Chain(Sum(harmonic, filtered)).render(ChainControls(controls(0, 250).source), 250 * HOP, SR)
    assert not torch.allclose(dry, whole)  # the reverb did something


def test_chain_controls_are_checked():
    chain = Chain(Sum(HarmonicSynth(4), FilteredNoise(5)), Reverb(1, 10))
    with pytest.raises(ValueError, match="1 effects but 0"):
        chain.render(ChainControls((None, None), ()), 64, SR)
    with pytest.raises(ValueError, match="2 sources but 1"):
        Sum(HarmonicSynth(4), FilteredNoise(5)).render((None,), 64, SR)
