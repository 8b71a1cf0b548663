"""The chunked BS.1770 meter of midi_ddsp.loudness against pyloudnorm's whole-signal meter and against
scipy's 4x polyphase resampler for true peaks, at several rates and lengths."""
import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from midi_ddsp import loudness
from midi_ddsp.loudness import Profile, integrated_loudness, normalize, true_peak


def music_like(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A swelling 220 Hz tone with bursts of noise every other second: gating has something to gate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    return (tone + 0.05 * rng.standard_normal(t.size) * (t % 2 < 0.5)).astype(np.float32)


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
@pytest.mark.parametrize("seconds", [0.3, 7.3, 31.0])
def test_integrated_loudness_and_true_peak_match_whole_signal_references(sr, seconds):
    x = music_like(sr, seconds)
    ref = pyloudnorm.Meter(sr, block_size=min(0.4, seconds)).integrated_loudness(x.astype(np.float64))
    assert integrated_loudness(x, sr) == pytest.approx(ref, abs=0.005)
    tp = float(np.max(np.abs(resample_poly(x.astype(np.float64), 4, 1))))
    assert true_peak(x) == pytest.approx(tp, rel=1e-9)
    assert Profile.of(x, sr).true_peak() == pytest.approx(tp, rel=1e-9)


def test_a_chunk_boundary_changes_nothing(monkeypatch):
    """The same signal read in small chunks (boundaries everywhere) measures the same."""
    x = music_like(48000, 5.0, seed=3)
    whole = integrated_loudness(x, 48000), Profile.of(x, 48000).true_peak()
    monkeypatch.setattr(loudness, "CHUNK", 4801)
    assert (integrated_loudness(x, 48000), Profile.of(x, 48000).true_peak()) == pytest.approx(whole, rel=1e-9)


def test_limiter_reaches_target_under_the_ceiling_and_reports_what_it_wrote():
    """Clicks on a quiet tone pushed to -14 LUFS at 48 kHz: the limiter acts, and the reported loudness and
    true peak are those of the output as pyloudnorm and scipy measure them."""
    sr = 48000
    t = np.arange(20 * sr) / sr
    x = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x[np.random.default_rng(2).integers(0, x.size, 40)] += 0.5
    y, _, level = normalize(x, None, sr, -14.0)
    assert level.gain.curve is not None and level.gain.min < level.gain.max  # the limiter acted
    measured = pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))
    tp_db = 20 * math.log10(np.max(np.abs(resample_poly(y.astype(np.float64), 4, 1))))
    assert level.lufs_after == pytest.approx(measured, abs=0.02)
    assert level.true_peak_dbfs == pytest.approx(tp_db, abs=0.01) and tp_db <= -1.0 + 1e-3
    assert measured == pytest.approx(-14.0, abs=0.1) or level.peak_limited


@pytest.mark.parametrize("sr", [8000, 48000])  # blocks shorter and longer than the interpolator's reach
def test_block_true_peaks_under_a_gain_curve_equal_the_interpolated_gained_signal(sr):
    """Where the limiter's curve is constant, block true peaks are taken as that gain times the plain
    signal's (linearity); where it changes they are interpolated again. Both must equal scipy's 4x
    interpolation of the gained signal itself, block by block."""
    from midi_ddsp.loudness import Gain

    x = music_like(sr, 4.0, 3)
    prof = Profile.of(x, sr)
    prof.peaks(0.0)  # the plain signal's exact peaks, cached
    n_blocks = prof.bound.size
    curve = np.ones(n_blocks)
    curve[n_blocks // 3:n_blocks // 2] = np.linspace(1.0, 0.3, n_blocks // 2 - n_blocks // 3)  # varying
    curve[n_blocks // 2:2 * n_blocks // 3] = 0.3  # flat below 1
    gain = Gain(1.7, curve, prof.block)
    got = prof.peaks(0.0, gain)
    y = x.astype(np.float64) * gain.samples(0, x.size)
    up = np.abs(resample_poly(y, 4, 1))
    per_sample = np.maximum(np.abs(y), up.reshape(-1, 4).max(1))
    want = np.maximum.reduceat(per_sample, np.arange(0, x.size, prof.block))
    inner = slice(2, n_blocks - 2)  # the signal's two ends: scipy pads differently
    np.testing.assert_allclose(got[inner], want[inner], rtol=1e-6)


def test_normalize_in_place_scales_stems_like_the_mix():
    sr = 16000
    stems = np.stack([music_like(sr, 3.0, 1), 0.5 * music_like(sr, 3.0, 2)])
    mix = stems.sum(0)
    y, s, level = normalize(mix, stems, sr, -20.0, copy=False)
    assert y is mix and s is stems  # float32 input, copy=False: scaled where it lies
    np.testing.assert_allclose(s.sum(0), y, atol=1e-6)
    assert integrated_loudness(y, sr) == pytest.approx(-20.0, abs=0.05)


@pytest.mark.parametrize("sr", [16000, 44100, 48000, 96000])
def test_k_weighting_is_pyloudnorms_filter_cascade(sr):
    """Our biquads equal pyloudnorm's, and the FFT-convolution K-weighting equals scipy's lfilter cascade
    on a signal that crosses several of its FFT blocks."""
    from scipy.signal import lfilter

    ref = [(np.asarray(f.b), np.asarray(f.a), f.passband_gain) for f in pyloudnorm.Meter(sr)._filters.values()]
    got = loudness.k_weighting_biquads(sr)
    for (b, a, g), (gb, ga) in zip(ref, got):
        assert g == 1.0
        np.testing.assert_allclose(gb, b, rtol=1e-12)
        np.testing.assert_allclose(ga, a, rtol=1e-12)
    x = music_like(sr, 3.0).astype(np.float64)
    want = x
    for b, a, _ in ref:
        want = lfilter(b, a, want)
    weighting = loudness._KWeighting(sr)
    out = np.concatenate([weighting(x[:12345]), weighting(x[12345:])])
    assert np.abs(out - want).max() < 1e-9 * np.abs(want).max()


def test_true_peak_interpolator_is_scipys_design():
    from scipy.signal import firwin

    np.testing.assert_allclose(loudness._interpolator(), firwin(81, 0.25, window=("kaiser", 5.0)) * 4, atol=1e-15)
