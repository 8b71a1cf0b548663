"""Features against independent references: Parseval / A-weighting arithmetic, a numpy+librosa loudness,
mel band centres, and f0 of numpy-synthesised harmonic tones."""
import librosa
import numpy as np
import pytest
import torch

from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness, estimate_f0, estimate_f0_batch, log_mel

SR = 16000
N_FFT = 512


def sine(freq, amp=1.0, seconds=1.0, sr=SR, phase=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t + phase)


def loud(x, **kw):
    return a_weighted_loudness(torch.tensor(np.atleast_2d(x), dtype=torch.float32), SR, **kw)


def a_weight_db(freq):
    return float(librosa.A_weighting(np.array([freq]))[0])


def a_weights(n_fft=N_FFT):
    with np.errstate(divide="ignore"):                                # 0 Hz: -inf, floored to -80 dB by librosa
        return 10 ** (librosa.A_weighting(librosa.fft_frequencies(sr=SR, n_fft=n_fft)) / 10)


def test_loudness_shape_and_silence():
    for n in (16000, 16000 + 37, 64 * 7):
        out = loud(np.zeros((2, n)))
        assert out.shape == (2, n // 64, 1)
        assert torch.all(out == -80.0)


def test_loudness_full_scale_sine_matches_parseval():
    # Sum of one-sided |STFT|^2 of a sine = N/2 * A^2/2 * sum(hann^2) = N/2 * A^2/2 * 3N/8; mean over N/2+1 bins.
    ld = loud(sine(1000.0))[0, 10:-10, 0].numpy()
    expected = 10 * np.log10(N_FFT / 2 * 0.5 * 3 * N_FFT / 8 / (N_FFT / 2 + 1)) + a_weight_db(1000.0)
    assert expected == pytest.approx(19.806, abs=0.01)
    np.testing.assert_allclose(ld, expected, atol=0.05)


def test_loudness_relative_levels_follow_a_weighting():
    full = loud(sine(1000.0))[0, 10:-10, 0]
    quiet = loud(sine(1000.0, amp=0.1))[0, 10:-10, 0]
    np.testing.assert_allclose((full - quiet).numpy(), 20.0, atol=1e-3)
    low = loud(sine(100.0))[0, 10:-10, 0]
    drop = float((full - low).mean())
    assert drop == pytest.approx(a_weight_db(1000.0) - a_weight_db(100.0), abs=1.0)   # ~19.1 dB


def test_loudness_white_noise_expected_power():
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (4, 4 * SR))
    ld = loud(noise)[:, 8:-8, 0].numpy()
    mean_power_db = 10 * np.log10(np.mean(10 ** (ld / 10)))
    expected = 10 * np.log10((1 / 3) * (3 * N_FFT / 8) * a_weights().mean())       # E|S_k|^2 = var * sum(w^2)
    assert mean_power_db == pytest.approx(expected, abs=0.2)


def test_loudness_matches_numpy_librosa_recipe():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(SR + 21) * np.linspace(0, 0.5, SR + 21)).astype(np.float32)
    spec = librosa.stft(x, n_fft=N_FFT, hop_length=64, window="hann", center=True, pad_mode="constant")
    power = np.abs(spec) ** 2 * a_weights()[:, None]
    ref = np.maximum(10 * np.log10(np.maximum(power.mean(0), 1e-8)), -80)[: x.size // 64]
    np.testing.assert_allclose(loud(x)[0, :, 0].numpy(), ref, atol=2e-3)


def test_loudness_is_differentiable():
    x = torch.tensor(sine(440.0, 0.5)[None], dtype=torch.float32, requires_grad=True)
    a_weighted_loudness(x, SR).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("band", [6, 30, 55])
def test_log_mel_peak_band(band):
    # A tone at a mel band's centre frequency (librosa's Slaney mel scale, 40-8000 Hz) peaks in that band.
    centres = librosa.mel_frequencies(n_mels=66, fmin=40.0, fmax=8000.0)[1:-1]
    out = log_mel(torch.tensor(sine(centres[band])[None], dtype=torch.float32), SR)
    assert out.shape == (1, SR // 64, 64)
    profile = out[0, 20:-20].mean(0)
    assert profile.argmax().item() == band
    # full-scale sine: peak bin reads 1, the Hann main lobe sums to <= 2 within a band -> log in (-0.5, log 2]
    assert -0.5 < profile[band].item() < np.log(2.0) + 0.01


def test_log_mel_silence_floor():
    out = log_mel(torch.zeros(1, 3000), SR)
    assert out.shape == (1, 3000 // 64, 64)
    torch.testing.assert_close(out, torch.full_like(out, np.log(1e-5)))


def harmonic_tone(f0, seconds=1.0, n_harm=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.7 ** k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 2 * np.pi))
            for k in range(n_harm) if f0 * (k + 1) < 0.45 * SR)
    return 0.5 * x / np.abs(x).max()


@pytest.mark.parametrize("f0", [110.0, 440.0, 1000.0])
def test_f0_of_harmonic_tones(f0):
    x = harmonic_tone(f0)
    est, conf = estimate_f0(x, SR)
    assert est.shape == conf.shape == (SR // 64,)
    cents = 1200 * np.log2(est[10:-10] / f0)
    assert np.max(np.abs(cents)) < 3.0
    assert np.min(conf[10:-10]) > 0.95


def test_f0_follows_vibrato_in_time():
    # 5.5 Hz, +-50 cent vibrato: a frame misplaced by 2 ms would be ~3.5 cents off at the steepest point.
    t = np.arange(2 * SR) / SR
    f_inst = 330.0 * 2 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f_inst) / SR
    x = 0.4 * np.sin(phase) + 0.2 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
    est, conf = estimate_f0(x, SR, fmin=60.0)
    cents = 1200 * np.log2(est / f_inst[::64][: est.size])[10:-10]
    assert np.max(np.abs(cents)) < 4.0


def test_f0_confidence_low_on_noise_and_silence():
    rng = np.random.default_rng(0)
    _, conf_noise = estimate_f0(rng.uniform(-0.5, 0.5, SR), SR)
    assert conf_noise.mean() < 0.3
    f0_sil, conf_sil = estimate_f0(np.zeros(SR), SR)
    assert np.all(conf_sil == 0) and np.all(np.isfinite(f0_sil))


def test_f0_holds_nearest_voiced_value_through_rests():
    x = np.concatenate([np.zeros(SR // 2), harmonic_tone(220.0), np.zeros(SR // 2), harmonic_tone(330.0)])
    est, conf = estimate_f0(x, SR)
    assert est.size == x.size // 64
    assert np.all(conf[:100] == 0)
    np.testing.assert_allclose(est[:100], 220.0, rtol=3e-3)           # leading rest takes the first note
    gap = slice(390, 485)                                             # deep inside the 0.5 s rest (frames 375-499)
    assert np.all(conf[gap] == 0)
    gap_f0 = est[gap]
    assert np.all((np.abs(gap_f0 - 220.0) < 1.0) | (np.abs(gap_f0 - 330.0) < 1.0))
    assert np.abs(est[-50:] / 330.0 - 1).max() < 3e-3


def test_f0_batch_lists():
    clips = [harmonic_tone(220.0, 0.5), harmonic_tone(440.0, 0.75)]
    out = estimate_f0_batch(clips, SR)
    assert [o[0].shape[0] for o in out] == [SR // 2 // 64, int(0.75 * SR) // 64]
    assert abs(np.median(out[1][0]) - 440.0) < 0.5


def test_measured_harmonic_distribution_of_a_known_tone():
    from midi_ddsp.synthesis.ddsp.features import measured_harmonic_distribution

    amps = np.array([1.0, 0.5, 0.0, 0.25, 0.125])
    t = np.arange(SR) / SR
    x = sum(a * np.sin(2 * np.pi * 220.0 * (k + 1) * t) for k, a in enumerate(amps))
    dist = measured_harmonic_distribution(x, np.full(SR // 64, 220.0), SR, n_harmonics=8)
    assert dist.shape == (SR // 64, 8)
    expected = np.concatenate([amps, np.zeros(3)]) / amps.sum()
    np.testing.assert_allclose(dist[20:-20], np.broadcast_to(expected, (dist.shape[0] - 40, 8)), atol=5e-3)
    # harmonics at or above Nyquist get nothing; silence gives all-zero rows
    high = measured_harmonic_distribution(np.sin(2 * np.pi * 3000.0 * t), np.full(SR // 64, 3000.0), SR,
                                          n_harmonics=4)
    assert np.all(high[20:-20, 2:] == 0) and np.allclose(high[20:-20, 0], 1.0, atol=1e-3)
    assert np.all(measured_harmonic_distribution(np.zeros(SR), np.full(SR // 64, 220.0), SR) == 0)


def test_measured_noise_magnitudes_of_white_noise_under_a_tone():
    """Uniform white noise of amplitude ``m`` (the synthesizer's flat-filter case) under a bright 300 Hz tone 50
    dB louder: every band reads ``m`` (power-averaged over frames) within 1 dB; without the tone as well."""
    from midi_ddsp.synthesis.ddsp.features import measured_noise_magnitudes

    rng = np.random.default_rng(0)
    n, m = 2 * SR, 10 ** (-60 / 20)
    noise = m * rng.uniform(-1, 1, n)
    t = np.arange(n) / SR
    tone = sum(0.3 / k * np.sin(2 * np.pi * 300.0 * k * t + k) for k in range(1, 27))
    f0 = np.full(n // 64, 300.0)
    for x in (noise, noise + tone):
        mags = measured_noise_magnitudes(x, f0, SR, 250.0)
        assert mags.shape == (n // 64, 65)
        band_db = 10 * np.log10((mags[20:-20].astype(np.float64) ** 2).mean(0))
        np.testing.assert_allclose(band_db[1:-1], -60.0, atol=1.0)
    # the tone alone: the harmonics are masked, what is left is far below the noise level used above
    quiet = measured_noise_magnitudes(tone, f0, SR, 250.0)
    assert 20 * np.log10(np.median(quiet[20:-20])) < -100


def test_spectral_subtraction_removes_the_noise_floor_from_the_harmonic_distribution():
    from midi_ddsp.synthesis.ddsp.features import measured_harmonic_distribution, measured_noise_magnitudes

    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    amps = np.array([0.3, 0.15, 0.05])
    x = sum(a * np.sin(2 * np.pi * 400.0 * (k + 1) * t) for k, a in enumerate(amps))
    x = x + 10 ** (-40 / 20) * rng.uniform(-1, 1, SR)  # a loud noise floor across all 20 harmonic slots
    f0 = np.full(SR // 64, 400.0)
    expected = np.concatenate([amps, np.zeros(17)]) / amps.sum()
    raw = measured_harmonic_distribution(x, f0, SR, n_harmonics=20)[20:-20].mean(0)
    clean = measured_harmonic_distribution(x, f0, SR, n_harmonics=20,
                                           noise_magnitudes=measured_noise_magnitudes(x, f0, SR))[20:-20].mean(0)
    centroid = lambda d: (d * np.arange(1, 21)).sum() / d.sum()  # noqa: E731
    assert centroid(raw) > centroid(expected) + 0.4  # the floor drags the centroid up
    assert abs(centroid(clean) - centroid(expected)) < 0.25 * abs(centroid(raw) - centroid(expected))
