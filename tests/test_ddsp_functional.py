"""Tests of midi_ddsp.synthesis.ddsp.functional against independent references (numpy, closed forms,
measured spectra)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from midi_ddsp.synthesis.ddsp import functional as DF

SR = 16000


def _t(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


# ---------------------------------------------------------------------------------------------------- helpers
def reference_oscillator(f0_frames, amp_frames, n_samples, sr, fade_start=0.9, upsampling="hann"):
    """Straightforward float64 numpy rendering of the documented formula (sample loop replaced by np.interp)."""
    f0_frames, amp_frames = np.asarray(f0_frames, np.float64), np.asarray(amp_frames, np.float64)
    n_frames, n_harm = amp_frames.shape
    pos = np.arange(n_samples) * n_frames / n_samples
    f0 = np.interp(pos, np.arange(n_frames), f0_frames)
    j = np.minimum(np.floor(pos).astype(int), n_frames - 1)
    j1 = np.minimum(j + 1, n_frames - 1)
    frac = pos - np.floor(pos)
    w = 0.5 - 0.5 * np.cos(np.pi * frac) if upsampling == "hann" else frac
    phase = np.cumsum(f0) / sr
    out = np.zeros(n_samples)
    nyq = sr / 2
    for k in range(1, n_harm + 1):
        f = k * f0
        if fade_start is None:
            g = (f < nyq).astype(float)
        else:
            x = np.clip((f - fade_start * nyq) / (nyq - fade_start * nyq), 0, 1)
            g = 0.5 + 0.5 * np.cos(np.pi * x)
        amp = amp_frames[j, k - 1] * (1 - w) + amp_frames[j1, k - 1] * w
        out += amp * g * np.sin(2 * np.pi * ((k * phase) % 1.0))
    return out


def peak_frequency(x, sr, zero_pad=16):
    """Frequency (Hz) of the strongest spectral peak: Hann window, zero padding, parabolic interpolation."""
    n_fft = zero_pad * len(x)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    i = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[i - 1 : i + 2])
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n_fft


def spectrum_db(x, sr):
    """Blackman-Harris-windowed magnitude spectrum in dB (sidelobes below -92 dB) and its frequencies."""
    n = len(x)
    t = np.arange(n) / n
    w = 0.35875 - 0.48829 * np.cos(2 * np.pi * t) + 0.14128 * np.cos(4 * np.pi * t) - 0.01168 * np.cos(6 * np.pi * t)
    mag = np.abs(np.fft.rfft(x * w))
    return 20 * np.log10(mag + 1e-30), np.fft.rfftfreq(n, 1 / sr)


# ------------------------------------------------------------------------------------------------ scales/units
def test_exp_sigmoid_matches_definition_and_bounds():
    x = torch.linspace(-20, 20, 101, dtype=torch.float64)
    expected = 2.0 / (1.0 + np.exp(-x.numpy())) ** np.log(10.0) + 1e-7
    np.testing.assert_allclose(DF.exp_sigmoid(x).numpy(), expected, rtol=1e-12)
    y = DF.exp_sigmoid(torch.tensor([-1e3, 0.0, 1e3]))
    assert y[0] == pytest.approx(1e-7) and y[2] == pytest.approx(2.0) and y[1] == pytest.approx(2 * 0.5 ** math.log(10))


def test_db_and_pitch_conversions():
    a = torch.tensor([1.0, 0.1, 1e-3, 1e-6, 0.0])
    np.testing.assert_allclose(DF.amplitude_to_db(a).numpy(), [0, -20, -60, -80, -80], atol=1e-4)
    amplitude = DF.db_to_amplitude(torch.tensor([0.0, -20.0, 6.0])).numpy()
    np.testing.assert_allclose(amplitude, [1, 0.1, 10**0.3], rtol=1e-6)
    np.testing.assert_allclose(DF.power_to_db(torch.tensor([1.0, 0.01])).numpy(), [0, -20], atol=1e-5)
    np.testing.assert_allclose(DF.db_to_power(torch.tensor([-30.0])).numpy(), [1e-3], rtol=1e-6)
    hz = torch.tensor([440.0, 880.0, 261.6256, 0.0])
    np.testing.assert_allclose(DF.hz_to_midi(hz).numpy(), [69, 81, 60, 0], atol=1e-4)
    np.testing.assert_allclose(DF.midi_to_hz(torch.tensor([69.0, 57.0])).numpy(), [440, 220], rtol=1e-6)
    assert DF.midi_to_hz(torch.tensor([0.0]), zero_is_silence=True).item() == 0.0


def test_nyquist_gain_shape():
    f = torch.tensor([0.0, 7199.0, 7200.0, 7600.0, 7999.0, 8000.0, 9000.0])
    g = DF.nyquist_gain(f, SR, 0.9)
    np.testing.assert_allclose(g.numpy(), [1, 1, 1, 0.5, 0.5 - 0.5 * np.cos(np.pi / 800), 0, 0], atol=1e-6)
    np.testing.assert_array_equal(DF.nyquist_gain(f, SR, None).numpy(), [1, 1, 1, 1, 1, 0, 0])


def test_next_fast_len():
    for n in [1, 7, 97, 1000, 111999, 191, 65537]:
        m = DF.next_fast_len(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
        assert all(not _is_5_smooth(x) for x in range(n, m))


def _is_5_smooth(x):
    for p in (2, 3, 5):
        while x % p == 0:
            x //= p
    return x == 1


# ---------------------------------------------------------------------------------------------------- upsampling
@pytest.mark.parametrize("n_samples", [400, 437])
def test_upsample_linear_matches_np_interp(n_samples):
    frames = np.random.default_rng(0).normal(size=(2, 10, 3))
    out = DF.upsample_linear(_t(frames, torch.float64), n_samples).numpy()
    pos = np.arange(n_samples) * 10 / n_samples
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[b, :, c], np.interp(pos, np.arange(10), frames[b, :, c]), atol=1e-12)


def test_upsample_hann_equals_overlap_added_windows():
    """For n = F * hop: literally overlap-add Hann windows of 2 hops centred on each frame (last held)."""
    rng = np.random.default_rng(1)
    n_frames, hop = 12, 16
    frames = rng.uniform(size=(1, n_frames, 2))
    window = np.hanning(2 * hop + 1)[:-1]  # periodic Hann, peak at index hop
    ola = np.zeros((n_frames + 2) * hop + 2 * hop)
    held = np.concatenate([frames[0], frames[0, -1:]], 0)
    expected = np.zeros((len(ola), 2))
    for i, v in enumerate(held):  # window i peaks at sample i * hop (offset by hop for the left half)
        expected[i * hop : i * hop + 2 * hop] += window[:, None] * v
    expected = expected[hop : hop + n_frames * hop]
    out = DF.upsample_hann(_t(frames, torch.float64), n_frames * hop).numpy()[0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_upsample_hann_any_length_is_smooth_and_exact_at_frames():
    frames = torch.tensor([[[0.0], [1.0], [0.2], [0.7], [0.7]]], dtype=torch.float64)
    n = 5 * 37 + 3  # not a multiple of the frame count
    out = DF.upsample_hann(frames, n)[0, :, 0].numpy()
    # constant input stays constant (windows sum to one)
    np.testing.assert_allclose(DF.upsample_hann(torch.ones(1, 5, 1), n).numpy(), 1.0, atol=1e-6)
    # exact frame values where a frame centre falls on a sample (t * F / n integer: t = 0 here)
    assert out[0] == 0.0
    # monotone between neighbouring frames and no corners: slope ~0 next to each frame centre
    pos = np.arange(n) * 5 / n
    for i in range(4):
        seg = out[(pos >= i) & (pos < i + 1)]
        assert np.all(np.diff(seg) * np.sign(frames[0, i + 1, 0] - frames[0, i, 0]).item() >= -1e-12)
    assert abs(out[1] - out[0]) < 0.1 / 37.6 and np.abs(np.diff(out)).max() < 0.05  # linear: 1 / 37.6


# -------------------------------------------------------------------------------------------------- oscillator
@pytest.mark.parametrize("n_samples", [2000, 2017])  # aligned (matmul path) and any length (gather path)
@pytest.mark.parametrize("fade_start", [0.9, None])
def test_oscillator_matches_float64_reference(n_samples, fade_start):
    rng = np.random.default_rng(2)
    n_frames, n_harm = 25, 20
    f0 = np.linspace(301.3, 1103.7, n_frames)  # harmonics cross the fade band and Nyquist
    amps = rng.uniform(0.0, 0.1, size=(n_frames, n_harm))
    out = DF.harmonic_oscillator(_t(f0[None, :, None]), _t(amps[None]), n_samples, SR, fade_start=fade_start,
                                 chunk_elements=3000)  # many chunks
    ref = reference_oscillator(f0, amps, n_samples, SR, fade_start)
    np.testing.assert_allclose(out[0].numpy(), ref, atol=2e-5)


def test_oscillator_linear_amplitudes_and_batch():
    rng = np.random.default_rng(3)
    f0 = np.stack([np.full(10, 220.0), np.linspace(100, 400, 10)])
    amps = rng.uniform(size=(2, 10, 4))
    out = DF.harmonic_oscillator(_t(f0[..., None]), _t(amps), 640, SR, amplitude_upsampling="linear")
    for b in range(2):
        np.testing.assert_allclose(out[b].numpy(), reference_oscillator(f0[b], amps[b], 640, SR, 0.9, "linear"),
                                   atol=2e-5)


def test_oscillator_fade_per_interval_in_a_batch_of_jumping_melodies():
    """Notes that jump between registers inside one chunk, differently in each batch row: every interval's
    harmonics are below the fade, inside it, crossing Nyquist or above it, and the per-interval fade of the
    recurrence path must equal the per-sample formula everywhere."""
    rng = np.random.default_rng(5)
    n_frames, n_harm, hop = 40, 24, 80
    f0 = np.stack([np.repeat(rng.choice([180.0, 390.0, 760.0, 1500.0], 8), 5),
                   np.repeat(rng.choice([95.0, 640.0, 1010.0, 2900.0], 8), 5)])
    f0 = f0 * (1 + 0.01 * np.sin(np.arange(n_frames) / 2.0))  # vibrato: partials wander in and out of the fade
    amps = rng.uniform(0.0, 0.1, size=(2, n_frames, n_harm))
    with torch.inference_mode():
        out = DF.harmonic_oscillator(_t(f0[..., None]), _t(amps), n_frames * hop, SR)
        direct = DF.harmonic_oscillator(_t(f0[..., None]), _t(amps), n_frames * hop, SR, recurrence=False)
    np.testing.assert_allclose(out.numpy(), direct.numpy(), atol=1e-5)  # recurrence rounding
    for b in range(2):  # float32 phase rounding of harmonic 24 dominates the difference to the float64 reference
        np.testing.assert_allclose(out[b].numpy(), reference_oscillator(f0[b], amps[b], n_frames * hop, SR),
                                   atol=2e-4)


@pytest.mark.parametrize("f0", [440.37, 1234.56, 61.7])
def test_measured_frequency_within_0p1_hz(f0):
    n = 2 * SR
    out = DF.harmonic_oscillator(torch.full((1, 500, 1), f0), torch.ones(1, 500, 1), n, SR)[0].numpy()
    assert abs(peak_frequency(out, SR) - f0) < 0.1


def test_no_aliasing_from_harmonics_above_nyquist():
    """f0 = 3 kHz: harmonics 3 (9 kHz) and 5 (15 kHz) lie above Nyquist and would fold to 7 kHz and 1 kHz."""
    n = SR
    amps = torch.ones(1, 250, 5)
    for fade in (0.9, None):
        out = DF.harmonic_oscillator(torch.full((1, 250, 1), 3000.0), amps, n, SR, fade_start=fade)[0].numpy()
        db, freqs = spectrum_db(out, SR)
        ref = db[np.argmin(np.abs(freqs - 3000))]
        for alias in (7000.0, 1000.0, 4000.0):  # 16k-9k, 16k-15k, |12k-16k|
            near = np.abs(freqs - alias) < 20
            assert db[near].max() - ref < -120, (fade, alias)
        assert db[np.argmin(np.abs(freqs - 6000))] - ref > -1  # harmonic 2 is there


def test_fade_is_smooth_through_nyquist():
    """A single partial gliding 7 -> 9 kHz through Nyquist: the hard cut switches it off abruptly (a click:
    broadband splatter far below the partial), the fade does not."""
    f0 = torch.linspace(7000.0, 9000.0, 125, dtype=torch.float64).view(1, 125, 1)
    amps = torch.ones(1, 125, 1, dtype=torch.float64)
    splatter = {}
    for fade in (0.9, None):
        y = DF.harmonic_oscillator(f0, amps, 8000, SR, fade_start=fade)[0].numpy()
        db, freqs = spectrum_db(y, SR)
        splatter[fade] = db[freqs < 5000].max() - db.max()
    assert splatter[0.9] < -100
    assert splatter[None] > -70


def _tone_check(minutes: float):
    """440 Hz with 60 harmonics (1/k): every partial that is not a harmonic is below -80 dB re fundamental
    (Blackman-Harris spectrum of the whole render), and the phase has not drifted at the end."""
    n = int(minutes * 60 * SR)
    n_frames = n // 64
    amps = (1.0 / torch.arange(1, 61, dtype=torch.float32)).expand(1, n_frames, 60)
    with torch.no_grad():
        y = DF.harmonic_oscillator(torch.full((1, n_frames, 1), 440.0), amps, n, SR)[0].numpy().astype(np.float64)
    tail = y[-1000:].copy()
    db, freqs = spectrum_db(y, SR)
    del y
    fundamental = db[np.argmin(np.abs(freqs - 440))]
    near_harmonic = np.abs(freqs / 440 - np.round(freqs / 440)) * 440 < 1.0  # within 1 Hz of k * 440
    assert db[~near_harmonic].max() - fundamental < -80
    # and no phase drift: the last samples equal the exact phase, computed in integer arithmetic
    t = np.arange(n - 1000, n, dtype=np.int64) + 1
    gains = DF.nyquist_gain(440.0 * torch.arange(1, 61, dtype=torch.float64), SR).numpy()
    ref = sum(gains[k - 1] / k * np.sin(2 * np.pi * ((k * 440 * t) % SR) / SR) for k in range(1, 61))
    np.testing.assert_allclose(tail, ref, atol=1e-4)


def test_15_s_tone_has_no_inharmonic_partials():
    _tone_check(0.25)


@pytest.mark.slow
def test_ten_minute_tone_has_no_inharmonic_partials():
    _tone_check(10.0)


def test_oscillator_gradcheck():
    """Analytic gradients (autograd through chunks, phase wrap, fade gains) equal finite differences."""
    torch.manual_seed(0)
    f0 = (torch.tensor([[[2000.0], [2300.0], [2500.0], [2600.0]]], dtype=torch.float64)).requires_grad_()
    amps = torch.rand(1, 4, 4, dtype=torch.float64, requires_grad=True)  # harmonic 3 fades, 4 is above Nyquist
    torch.autograd.gradcheck(lambda f, a: DF.harmonic_oscillator(f, a, 48, SR, chunk_elements=64), (f0, amps))
    torch.autograd.gradcheck(lambda f, a: DF.harmonic_oscillator(f, a, 45, SR, chunk_elements=64), (f0, amps))


# ------------------------------------------------------------------------------------------- filters, convolution
def test_frequency_impulse_response_matches_design():
    mags = torch.rand(2, 3, 65, dtype=torch.float64)
    ir = DF.frequency_impulse_response(mags).numpy()
    assert ir.shape == (2, 3, 128)
    # linear phase: symmetric about tap 64
    np.testing.assert_allclose(ir[..., 1:64], ir[..., 127:64:-1], atol=1e-15)
    # zero-phase spectrum smoothed by the Hann window: H = M circularly convolved with [1/4, 1/2, 1/4]
    spec = np.fft.rfft(np.roll(ir, -64, -1), axis=-1).real
    m = mags.numpy()
    sym = np.concatenate([m, m[..., -2:0:-1]], -1)
    smooth = 0.5 * sym + 0.25 * np.roll(sym, 1, -1) + 0.25 * np.roll(sym, -1, -1)
    np.testing.assert_allclose(spec, smooth[..., :65], atol=1e-12)
    flat = DF.frequency_impulse_response(torch.ones(1, 1, 65))[0, 0].numpy()
    np.testing.assert_allclose(flat, np.eye(128)[64], atol=1e-7)


def test_fft_convolve_matches_numpy_in_one_and_many_blocks():
    rng = np.random.default_rng(4)
    x, h = rng.normal(size=(3, 5000)), rng.normal(size=(1, 700))
    expected = np.stack([np.convolve(xi, h[0])[:5000] for xi in x])
    for max_fft, chunk in ((2**20, DF.CHUNK_ELEMENTS), (1024, DF.CHUNK_ELEMENTS), (1400, 5000)):
        y = DF.fft_convolve(_t(x, torch.float64), _t(h, torch.float64), max_fft_size=max_fft, chunk_elements=chunk)
        np.testing.assert_allclose(y.numpy(), expected, atol=1e-9)
    hb = rng.normal(size=(3, 50))  # one IR per batch item
    y = DF.fft_convolve(_t(x, torch.float64), _t(hb, torch.float64)).numpy()
    np.testing.assert_allclose(y, np.stack([np.convolve(x[i], hb[i])[:5000] for i in range(3)]), atol=1e-9)


def test_fft_convolve_unit_impulse_is_identity():
    x = torch.randn(2, 3000)
    np.testing.assert_allclose(DF.fft_convolve(x, torch.eye(1, 48000)).numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize("windowed", [True, False])
@pytest.mark.parametrize("n", [6400, 6395])
def test_ltv_filter_with_constant_ir_is_plain_convolution(windowed, n):
    rng = np.random.default_rng(5)
    x, h = rng.normal(size=(2, n)), rng.normal(size=(2, 1, 128))
    irs = np.repeat(h, 100, 1)
    expected = np.stack([np.convolve(x[b], h[b, 0])[64 : 64 + n] for b in range(2)])
    for chunk in (DF.CHUNK_ELEMENTS, 3000):
        y = DF.ltv_fir_filter(_t(x, torch.float64), _t(irs, torch.float64), delay=64, windowed=windowed,
                              chunk_elements=chunk)
        np.testing.assert_allclose(y.numpy(), expected, atol=1e-9)


def test_ltv_filter_matches_direct_windowed_definition():
    """y = sum_i conv(w_i * x, h_i): Hann windows w_i of 2 hops centred on frame i (last IR held)."""
    rng = np.random.default_rng(6)
    n_frames, hop, taps = 20, 32, 16
    n = n_frames * hop
    x, irs = rng.normal(size=n), rng.normal(size=(n_frames, taps))
    window = np.hanning(2 * hop + 1)[:-1]
    y = np.zeros(n + 3 * hop + taps)
    for i in range(n_frames + 1):
        seg = np.zeros(2 * hop)
        lo, hi = i * hop - hop, i * hop + hop
        a, b = max(lo, 0), min(hi, n)
        if a < b:
            seg[a - lo : b - lo] = x[a:b]
        conv = np.convolve(seg * window, irs[min(i, n_frames - 1)])
        y[lo + hop : lo + hop + len(conv)] += conv  # stored with an offset of hop
    expected = y[hop + 3 : hop + 3 + n]
    for chunk in (DF.CHUNK_ELEMENTS, 300, 1000):  # one group of frames; several (group edges)
        out = DF.ltv_fir_filter(_t(x[None], torch.float64), _t(irs[None], torch.float64), delay=3,
                                chunk_elements=chunk).numpy()[0]
        np.testing.assert_allclose(out, expected, atol=1e-10)


def test_ltv_filter_windowed_has_no_block_clicks():
    """A 1 kHz sine through IRs whose gain alternates 1, 0.25 every frame. Windowed overlap-add crossfades the
    gain (a smooth 125 Hz modulation: sidebands at +-125 Hz only); ddsp-style blocks switch it (a square
    wave: broadband splatter)."""
    n_frames, hop = 250, 64
    n = n_frames * hop
    x = torch.sin(2 * math.pi * 1000 * torch.arange(n, dtype=torch.float64) / SR)[None]
    gains = torch.where(torch.arange(n_frames) % 2 == 0, 1.0, 0.25).to(torch.float64)
    irs = (gains[:, None] * torch.eye(128, dtype=torch.float64)[64]).view(1, n_frames, 128)
    splatter = {}
    for windowed in (True, False):
        y = DF.ltv_fir_filter(x, irs, delay=64, windowed=windowed)[0].numpy()[1000:-1000]
        db, freqs = spectrum_db(y, SR)
        far = np.abs(freqs - 1000) > 400
        splatter[windowed] = db[far].max() - db.max()
    assert splatter[True] < -90
    assert splatter[False] > -40


def test_ltv_filter_gradcheck():
    x = torch.randn(1, 30, dtype=torch.float64, requires_grad=True)
    irs = torch.randn(1, 3, 6, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, h: DF.ltv_fir_filter(a, h, delay=3), (x, irs))
    torch.autograd.gradcheck(lambda a, h: DF.fft_convolve(a, h[0, :1], max_fft_size=16), (x, irs))


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_recurrence_oscillator_equals_direct_sines(sample_rate):
    """The Chebyshev-recurrence sines (used when no gradient is needed) against one sin per harmonic: a low
    glide with every harmonic at full amplitude (the recurrence's worst case) stays within 1e-4 of full scale,
    and its spectrum holds nothing above the measured partials' fold-back floor."""
    f0 = torch.linspace(30.0, 2000.0, 250)[None, :, None]
    amps = torch.full((1, 250, 60), 1.0 / 60)
    n = sample_rate
    direct = DF.harmonic_oscillator(f0, amps, n, sample_rate, recurrence=False)
    fast = DF.harmonic_oscillator(f0, amps, n, sample_rate, recurrence=True)
    assert (fast - direct).abs().max() < 1e-4
    steady = DF.harmonic_oscillator(torch.full((1, 250, 1), 3000.0), torch.ones(1, 250, 5), n, sample_rate)
    db, freqs = spectrum_db(steady[0].numpy(), sample_rate)
    ref = db[np.argmin(np.abs(freqs - 3000))]
    for k in range(1, 6):  # the partials that fit below Nyquist are there, at k * 3 kHz
        if k * 3000 < 0.9 * sample_rate / 2:
            assert db[np.argmin(np.abs(freqs - k * 3000))] - ref > -1
    if sample_rate == 16000:
        for alias in (7000.0, 1000.0, 4000.0):  # where harmonics 3 and 5 would fold back
            assert db[np.abs(freqs - alias) < 20].max() - ref < -120
