"""Model-free inversion: controls measured from audio synthesized with known controls."""
import numpy as np
import torch

from midi_ddsp.synthesis.ddsp.inversion import measure_controls
from midi_ddsp.synthesis.ddsp.synths import FilteredNoise, HarmonicSynth


def _render(amp, harm, f0, noise, sr, seed=0):
    frames = amp.shape[0]
    n = frames * (sr // 250)
    t = lambda x: torch.as_tensor(x, dtype=torch.float32)[None]  # noqa: E731
    audio = HarmonicSynth(n_harmonics=harm.shape[1])(t(amp[:, None]), t(harm), t(f0[:, None]), n_samples=n,
                                                       sample_rate=sr)
    g = torch.Generator().manual_seed(seed)
    audio = audio + FilteredNoise(n_bands=noise.shape[1])(t(noise), n_samples=n, generator=g)
    return audio[0].double().numpy()


def test_measured_controls_recover_a_known_tone_at_48k():
    sr, frames, h, k = 48000, 500, 128, 129
    f0 = np.full(frames, 110.0)                              # 110 Hz: 128 harmonics reach 14 kHz
    harm = (np.arange(1, h + 1) ** -1.5)[None].repeat(frames, 0)
    harm[:, 0] *= 0.1                                        # a weak fundamental (-20 dB), like a bassoon's
    harm /= harm.sum(-1, keepdims=True)
    amp = np.full(frames, 0.2)
    noise = np.full((frames, k), 1e-4)
    got = measure_controls(_render(amp, harm, f0, noise, sr), f0, sr, n_harmonics=h, n_noise_bands=k, lowest_hz=55)
    mid = slice(100, 400)
    assert abs(np.median(got.amplitude[mid]) / 0.2 - 1) < 0.03
    want_db = 20 * np.log10(harm[0, :24])
    got_db = 20 * np.log10(np.median(got.harmonic_distribution[mid, :24], 0))
    assert np.max(np.abs(got_db - want_db)) < 1.0            # harmonics 1-24 within 1 dB, incl. the fundamental
    noise_db = 20 * np.log10(np.median(got.noise_magnitudes[mid], 0))
    assert abs(np.median(noise_db) - (-80.0)) < 2.0


def test_measured_amplitude_follows_an_onset_within_a_few_frames():
    sr, frames = 48000, 250
    f0 = np.full(frames, 440.0)
    harm = np.zeros((frames, 16)); harm[:, 0] = 1.0
    amp = np.where(np.arange(frames) >= 125, 0.5, 0.0)
    audio = _render(amp, harm, f0, np.full((frames, 33), 1e-6), sr)
    got = measure_controls(audio, f0, sr, n_harmonics=16, n_noise_bands=33, lowest_hz=220).amplitude
    assert got[100] < 0.01 and got[150] > 0.45
    rise = np.flatnonzero(got > 0.25)[0]
    assert abs(rise - 125) <= 3                              # half-way point within 12 ms of the step
