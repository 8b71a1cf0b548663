"""Evidence for note segmentation measured on the audio itself (numpy/librosa, no neural network): onset
strength, harmonicity, and harmonic energies with the octave correction of a period tracker built on them.

Frame ``i`` is centred on sample ``i * hop``, hop = sample_rate / frame_rate (the project's 250 Hz grid).
"""
from __future__ import annotations

import numpy as np


def onset_strength(audio: np.ndarray, sample_rate: int, frame_rate: float = 250.0) -> np.ndarray:
    """Spectral-flux onset strength (librosa's mel flux, log power) on the project's frame grid: float32
    [n // hop], frame ``i`` centred on sample ``i * hop`` (hop = sample_rate / frame_rate)."""
    import librosa

    hop = int(round(sample_rate / frame_rate))
    x = np.asarray(audio, np.float32).reshape(-1)
    n_frames = x.size // hop
    if n_frames == 0:
        return np.zeros(0, np.float32)
    n_fft = int(2 ** np.ceil(np.log2(0.032 * sample_rate)))  # ~32 ms window at any rate
    env = librosa.onset.onset_strength(y=x, sr=sample_rate, hop_length=hop, n_fft=n_fft, n_mels=64,
                                       fmax=min(8000.0, sample_rate / 2), center=True)
    out = np.zeros(n_frames, np.float32)
    k = min(n_frames, env.size)
    out[:k] = env[:k]
    return out


def harmonicity(audio: np.ndarray, sample_rate: int, f0_hz: np.ndarray, frames: np.ndarray,
                frame_rate: float = 250.0, max_frames: int = 400) -> float:
    """Fraction of spectral power that lies near the harmonics of f0 (within a quarter of f0), over
    (up to ``max_frames`` evenly chosen of) the given frame indices: ~1 for one harmonic voice, lower for
    noise or a second voice. NaN when there are no frames."""
    frames = np.asarray(frames, np.int64)
    if frames.size == 0:
        return float("nan")
    if frames.size > max_frames:
        frames = frames[np.linspace(0, frames.size - 1, max_frames).astype(np.int64)]
    x = np.asarray(audio, np.float64).reshape(-1)
    hop = int(round(sample_rate / frame_rate))
    n_fft = int(2 ** np.ceil(np.log2(0.064 * sample_rate)))
    xp = np.pad(x, (n_fft // 2, n_fft // 2))
    idx = frames[:, None] * hop + np.arange(n_fft)[None, :]
    idx = np.clip(idx, 0, xp.size - 1)
    power = np.abs(np.fft.rfft(xp[idx] * np.hanning(n_fft), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    f0 = np.maximum(np.asarray(f0_hz, np.float64)[frames], 1.0)[:, None]
    ratio = freqs[None, :] / f0
    near = np.abs(ratio - np.rint(ratio)) <= 0.25
    near &= (np.rint(ratio) >= 1) & (freqs[None, :] >= 0.75 * f0) & (freqs[None, :] <= sample_rate / 2.2)
    band = (freqs[None, :] >= 0.75 * f0) & (freqs[None, :] <= sample_rate / 2.2)
    total = np.sum(power * band, axis=1)
    ok = total > 0
    if not ok.any():
        return float("nan")
    return float(np.sum(power * near, axis=1)[ok].sum() / total[ok].sum())


def harmonic_energies(audio: np.ndarray, sample_rate: int, f0_hz: np.ndarray, frame_rate: float = 250.0,
                      max_hz: float = 5000.0, n_harmonics: int = 24, chunk_frames: int = 2048
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectral power at the odd and even multiples of f0 and halfway between the multiples.

    Each frame (Hann window of ~64 ms centred on sample ``i * hop``) gives its power spectrum; for
    ``k = 1..n_harmonics`` with ``k * f0 <= max_hz`` (and below Nyquist) the largest bin power within one bin
    of ``k * f0`` is added to ``odd`` or ``even``, and the one at ``(k - 0.5) * f0`` to ``half``.
    Returns float64 ``(odd, even, half)`` [F], F = f0_hz.size.
    """
    import librosa

    x = np.asarray(audio, np.float64).reshape(-1)
    f0 = np.maximum(np.asarray(f0_hz, np.float64).reshape(-1), 1.0)
    F = f0.size
    hop = int(round(sample_rate / frame_rate))
    n_fft = int(2 ** np.ceil(np.log2(0.064 * sample_rate)))
    window = np.hanning(n_fft)
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + hop * max(0, F - x.size // hop) + hop))
    k = np.arange(1, n_harmonics + 1, dtype=np.float64)
    bin_hz = sample_rate / n_fft
    top = min(max_hz, 0.45 * sample_rate)
    odd, even, half = np.zeros(F), np.zeros(F), np.zeros(F)
    for a in range(0, F, chunk_frames):
        b = min(F, a + chunk_frames)
        frames = librosa.util.frame(padded[a * hop:(b - 1) * hop + n_fft], frame_length=n_fft, hop_length=hop,
                                    axis=0)[: b - a]
        power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2                  # [n, bins]
        padp = np.pad(power, ((0, 0), (1, 1)))
        peak = np.maximum(np.maximum(padp[:, :-2], padp[:, 1:-1]), padp[:, 2:])     # max over +-1 bin
        rows = np.arange(b - a)[:, None]
        for mult, out in ((k, None), (k - 0.5, half)):
            f = f0[a:b, None] * mult[None, :]
            ok = f <= top
            idx = np.clip(np.rint(f / bin_hz).astype(np.int64), 0, power.shape[1] - 1)
            e = np.where(ok, peak[rows, idx], 0.0)
            if out is None:
                odd[a:b] = e[:, 0::2].sum(1)
                even[a:b] = e[:, 1::2].sum(1)
            else:
                out[a:b] = e.sum(1)
    return odd, even, half


def correct_octaves(f0_hz: np.ndarray, odd: np.ndarray, even: np.ndarray, half: np.ndarray,
                    fmin: float = 30.0, fmax: float = 4000.0, odd_share: float = 0.08, half_share: float = 0.6
                    ) -> np.ndarray:
    """Fix octave errors of a period tracker from harmonic evidence (see :func:`harmonic_energies`).

    If the odd multiples of f0 (1, 3, 5, ...) carry less than ``odd_share`` of the harmonic energy, the tone
    heard is at 2 f0 (a sub-octave reading, e.g. a new note above a release that still rings): f0 is doubled.
    If the half-way multiples (0.5, 1.5, ...) carry more than ``half_share`` times the energy of the integer
    multiples, the tone is at f0 / 2 (a weak fundamental read an octave up): f0 is halved. The result stays
    inside [fmin, fmax]. Returns float32 [F].
    """
    f0 = np.asarray(f0_hz, np.float64).copy()
    total = odd + even
    with np.errstate(invalid="ignore", divide="ignore"):
        up = (total > 0) & (odd < odd_share * total) & (2 * f0 <= fmax)
        down = (total > 0) & (half > half_share * total) & (0.5 * f0 >= fmin) & ~up
    f0[up] *= 2.0
    f0[down] *= 0.5
    return f0.astype(np.float32)


__all__ = ["onset_strength", "harmonicity", "harmonic_energies", "correct_octaves"]
