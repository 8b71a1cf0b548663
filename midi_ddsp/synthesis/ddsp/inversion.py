"""Model-free inversion of the harmonic-plus-noise model: synthesizer controls measured from audio and f0.

``measure_controls`` answers "which amplitude, harmonic distribution and noise bands would make this sound"
straight from the spectrum, with no network. It serves as a training target (the instruments' own spectral
envelopes, measured at any sample rate) and as an analysis tool.

Window lengths follow the lowest f0 to be resolved (``lowest_hz``):

- harmonic distribution: Hann window of ``max(64 ms, 4.5 periods)``, so neighbouring harmonics of the lowest
  note fall in separate main lobes;
- noise bands: Blackman-Harris window of ``max(64 ms, 9.5 periods)`` (capped at 250 ms), so bins 4.5 bins
  away from every harmonic exist (see :func:`~.features.measured_noise_magnitudes`);
- overall amplitude: Hann window of ``max(25 ms, 1.5 periods)``, short, so attacks and releases stay sharp;
  it is the harmonic energy of that window (noise subtracted) divided by the l2 norm of the distribution,
  which is exact for a steady harmonic tone.

The long windows change slowly, so the noise bands are measured every ``noise_step`` frames and the
distribution every ``harmonic_step`` frames and interpolated in between (noise in dB); the amplitude is
measured on every frame.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .features import framed_power, measured_harmonic_distribution, measured_noise_magnitudes, window_samples

__all__ = ["MeasuredControls", "measure_controls"]


class MeasuredControls(NamedTuple):
    """Synthesizer controls per frame (numpy, float32).

    amplitude [F] linear; harmonic_distribution [F, H] summing to 1 below Nyquist; noise_magnitudes [F, K]
    linear band magnitudes on the scale of ``FilteredNoise`` (bands evenly spaced from 0 Hz to Nyquist).
    """

    amplitude: np.ndarray
    harmonic_distribution: np.ndarray
    noise_magnitudes: np.ndarray


def measure_controls(audio: np.ndarray, f0_hz: np.ndarray, sample_rate: int, frame_rate: float = 250.0,
                     n_harmonics: int = 128, n_noise_bands: int = 129, lowest_hz: float = 50.0,
                     excitation_power: float = 1.0 / 3.0, noise_step: int = 5, harmonic_step: int = 2
                     ) -> MeasuredControls:
    """Measure the harmonic-plus-noise controls of ``audio`` (mono, [n]) given its f0 ([F] Hz at ``frame_rate``).

    Args:
        sample_rate: Hz. frame_rate: Hz (hop must be a whole number of samples).
        n_harmonics, n_noise_bands: sizes of the synthesizer the controls are for.
        lowest_hz: the lowest f0 the windows must resolve (the instrument's lowest note), Hz.
        excitation_power: variance of the synthesizer's noise excitation (uniform [-1, 1): 1/3).
        noise_step, harmonic_step: measure the slow parts on every n-th frame (``frame_rate / step`` must
            give a whole hop) and interpolate.
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    period = 1.0 / max(float(lowest_hz), 1.0)
    n_noise = window_samples(sample_rate, min(0.25, max(0.064, 9.5 * period)))
    coarse = measured_noise_magnitudes(audio, f0[::noise_step], sample_rate, frame_rate / noise_step,
                                       n_noise_bands, n_fft=n_noise, excitation_power=excitation_power)
    noise = 10.0 ** (_upsample(20.0 * np.log10(np.maximum(coarse, 1e-7)), noise_step, f0.size) / 20.0)
    noise = noise.astype(np.float32)
    n_harm = window_samples(sample_rate, max(0.064, 4.5 * period))
    coarse = measured_harmonic_distribution(audio, f0[::harmonic_step], sample_rate, frame_rate / harmonic_step,
                                            n_harmonics, n_fft=n_harm, noise_magnitudes=noise[::harmonic_step],
                                            excitation_power=excitation_power)
    harm = _upsample(coarse, harmonic_step, f0.size)
    total = harm.sum(-1, keepdims=True)
    harm = np.where(total > 0, harm / np.maximum(total, 1e-30), 0.0).astype(np.float32)
    norm = np.sqrt(np.sum(harm.astype(np.float64) ** 2, axis=-1))
    amplitude = _harmonic_rms(audio, f0, noise, sample_rate, frame_rate, n_harmonics, excitation_power,
                              window_samples(sample_rate, max(0.025, 1.5 * period)))
    amplitude = np.where(norm > 0, amplitude / np.maximum(norm, 1e-12), 0.0)
    return MeasuredControls(amplitude.astype(np.float32), harm, noise)


def _upsample(coarse: np.ndarray, step: int, n_frames: int) -> np.ndarray:
    """Values on frames 0, step, 2 step, ... -> every frame (linear; held after the last). [n_frames, C]."""
    if step == 1:
        return coarse[:n_frames]
    t = np.arange(n_frames) / step
    lo = np.minimum(np.floor(t).astype(np.int64), coarse.shape[0] - 1)
    hi = np.minimum(lo + 1, coarse.shape[0] - 1)
    w = (t - lo)[:, None]
    return coarse[lo] * (1 - w) + coarse[hi] * w


def _harmonic_rms(audio, f0, noise, sample_rate, frame_rate, n_harmonics, excitation_power, n_fft) -> np.ndarray:
    """sqrt(sum_k a_k^2) per frame: power below the highest harmonic (and Nyquist), expected noise power
    removed, scaled so a sinusoid of amplitude ``a`` reads ``a``. [F] float64."""
    window = np.hanning(n_fft)
    w2 = np.sum(window ** 2)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = np.rint(freqs / (sample_rate / 2) * (noise.shape[1] - 1)).astype(np.int64)
    out = np.zeros(f0.size)
    for start, stop, power in framed_power(audio, f0.size, sample_rate, frame_rate, window):
        expected_noise = excitation_power * w2 * noise[start:stop][:, band].astype(np.float64) ** 2
        top = np.minimum((n_harmonics + 0.5) * f0[start:stop], sample_rate / 2)
        below = freqs[None, :] < top[:, None]
        energy = np.maximum(np.sum((power - expected_noise) * below, axis=-1), 0.0)
        out[start:stop] = 2.0 * np.sqrt(energy / (n_fft * w2))
    return out
