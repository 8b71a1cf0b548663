"""Synthesizer and loss sizes derived from the sample rate (one place, so every stage agrees).

- Harmonics: enough partials for the lowest note of the 13 instruments (tuba, D1 ~ 37 Hz) to reach Nyquist
  would be ~650 at 48 kHz; the oscillator's cost grows with the count, so it is capped at
  ``HARMONICS_PER_16K * rate / 16 kHz`` (60 at 16 kHz, 96 at 48 kHz through the cap ``MAX_HARMONICS``). A
  violin's lowest note (G3) then reaches 18.8 kHz at 48 kHz, a cello's C2 6.2 kHz and its G3 18.8 kHz;
  above the last partial the filtered noise carries the band. Partials above Nyquist are faded out by the
  synthesizer (anti-aliasing), so high notes simply use fewer.
- Noise bands: 65 at 16 kHz (125 Hz apart), 129 at 48 kHz (188 Hz apart), covering 0 Hz to Nyquist.
- Spectral loss: FFT sizes 2048..64 at 16 kHz, scaled with the rate (6144..192 at 48 kHz), so each scale
  spans the same time at every rate. The log-magnitude term weighs every bin alike, so the upper octaves
  (half the bins) are seen; magnitudes at these sizes stay far above the loss's 1e-5 floor up to 24 kHz.
- Reverb: a length in seconds.
"""
from __future__ import annotations

DEFAULT_SAMPLE_RATE = 48000   # Hz: the rate of new models (a model folder records its own)
HARMONICS_PER_16K = 60
MAX_HARMONICS = 96
REVERB_S = 1.0                # seconds of impulse response for new models


def n_harmonics_for(sample_rate: int) -> int:
    """Harmonic count of a new synthesizer at ``sample_rate`` (Hz)."""
    return int(min(MAX_HARMONICS, round(HARMONICS_PER_16K * sample_rate / 16000)))


def n_noise_bands_for(sample_rate: int) -> int:
    """Noise bands (0 Hz..Nyquist) of a new synthesizer at ``sample_rate`` (Hz): 65 at 16 kHz, 129 at 48 kHz."""
    return 65 if sample_rate <= 16000 else (129 if sample_rate <= 48000 else 257)


def reverb_taps(sample_rate: int, seconds: float = REVERB_S) -> int:
    """Impulse-response length in samples for ``seconds`` at ``sample_rate``."""
    return int(round(seconds * sample_rate))


def spectral_fft_sizes(sample_rate: int) -> tuple[int, ...]:
    """Multi-scale spectral loss FFT sizes at ``sample_rate``: 2048..64 at 16 kHz, scaled in time."""
    scale = sample_rate / 16000
    return tuple(max(16, 4 * int(round(size * scale / 4))) for size in (2048, 1024, 512, 256, 128, 64))
