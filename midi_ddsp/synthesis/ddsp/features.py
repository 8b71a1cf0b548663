"""Audio features at the frame rate: A-weighted loudness, log-mel, f0 + confidence.

Frame convention (shared by every feature here): ``hop = sample_rate / frame_rate`` samples (must be an
integer; 64 at 16 kHz / 250 Hz), frame ``i`` is centred on sample ``i * hop`` (zero padding at the edges),
and a clip of ``n`` samples gives exactly ``F = n // hop`` frames (the extra frame a centred STFT makes at
the end is dropped).

``a_weighted_loudness`` and ``log_mel`` are pure torch and differentiable. ``estimate_f0`` is numpy
(offline analysis for training targets).
"""
from __future__ import annotations

import functools
from typing import Sequence

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import torch

__all__ = ["a_weighted_loudness", "log_mel", "estimate_f0", "estimate_f0_batch", "frame_hop",
           "measured_harmonic_distribution", "measured_noise_magnitudes", "framed_power"]


def frame_hop(sample_rate: int, frame_rate: float) -> int:
    """Hop in samples between frames; raises unless ``sample_rate / frame_rate`` is an integer."""
    hop = sample_rate / frame_rate
    if hop != int(hop) or hop < 1:
        raise ValueError(f"sample_rate / frame_rate must be a positive integer, got {sample_rate}/{frame_rate}")
    return int(hop)


def window_samples(sample_rate: int, seconds: float) -> int:
    """An even number of samples closest to ``seconds`` at ``sample_rate`` (Hz)."""
    return max(2, 2 * int(round(seconds * sample_rate / 2)))


def _as_batch(audio: torch.Tensor) -> torch.Tensor:
    if audio.dim() == 1:
        audio = audio[None]
    if audio.dim() != 2:
        raise ValueError(f"audio must be [batch, samples] (or [samples]), got shape {tuple(audio.shape)}")
    return audio


def _centred_stft(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT [B, n_fft//2+1, F] of [B, n] audio, periodic Hann window of n_fft, zero centre padding,
    unnormalised, F = n // hop."""
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window,
                      center=True, pad_mode="constant", return_complex=True)
    return spec[..., : audio.shape[-1] // hop]


@functools.lru_cache(maxsize=16)
def _a_weighting_power(sample_rate: int, n_fft: int) -> np.ndarray:
    """librosa's A-weighting (dB, floored at -80 dB as librosa does) at the rfft bins, as a power factor."""
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    with np.errstate(divide="ignore"):                                       # log10(0) at DC -> floored
        weight_db = librosa.A_weighting(freqs)
    return (10.0 ** (weight_db / 10.0)).astype(np.float64)


def a_weighted_loudness(audio: torch.Tensor, sample_rate: int, frame_rate: float = 250.0, n_fft: int | None = None,
                        range_db: float = 80.0, ref_db: float = 0.0) -> torch.Tensor:
    """A-weighted loudness, magenta ddsp's ``compute_loudness`` recipe (v2+ defaults, ``padding='center'``).

    Per frame: power ``|STFT|^2`` (periodic Hann window of ``n_fft``, unnormalised), times librosa's
    A-weighting turned into a power factor, **mean** over the ``n_fft//2+1`` bins, then
    ``power_to_db``: power floored at ``10**(-range_db/10)``, ``10*log10``, minus ``ref_db``, floored at
    ``-range_db``.

    Args:
        audio: [B, n] (or [n]) waveform, linear amplitude (full scale = 1).
        sample_rate: Hz. frame_rate: frames per second (Hz). n_fft: STFT size in samples; None: a 32 ms
            window (512 at 16 kHz, 1536 at 48 kHz), so the analysis window is the same length of time at
            every rate. (Mean power over bins grows with n_fft: at 48 kHz a tone reads ~4.8 dB above its
            16 kHz value; models record their rate and are trained and run with one rate.)
    Returns:
        [B, F, 1] loudness in dB, F = n // hop. Silence reads ``-range_db``. There is no upper clamp (as in
        magenta): with n_fft 512 a full-scale 1 kHz sine reads about +19.8 dB and full-scale uniform white
        noise in [-1, 1] about +18.2 dB, so "[-80, 0]" only holds for quiet material.
    """
    audio = _as_batch(audio)
    hop = frame_hop(sample_rate, frame_rate)
    n_fft = window_samples(sample_rate, 0.032) if n_fft is None else int(n_fft)
    spec = _centred_stft(audio, n_fft, hop)
    power = torch.view_as_real(spec).square().sum(-1)                      # [B, K, F]
    weight = torch.as_tensor(_a_weighting_power(int(sample_rate), int(n_fft)), dtype=power.dtype,
                             device=power.device)
    mean_power = (power * weight[:, None]).mean(dim=1)                      # [B, F]
    db = 10.0 * torch.log10(mean_power.clamp_min(10.0 ** (-range_db / 10.0))) - ref_db
    return db.clamp_min(-range_db)[..., None]


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                               htk=False, norm=None)


def log_mel(audio: torch.Tensor, sample_rate: int, frame_rate: float = 250.0, n_mels: int = 64,
            n_fft: int | None = None, fmin: float = 40.0, fmax: float | None = None, eps: float = 1e-5
            ) -> torch.Tensor:
    """Log mel-band magnitude spectrogram.

    STFT magnitude (periodic Hann of ``n_fft``, scaled by ``2 / sum(window)`` so a full-scale sine's peak bin
    reads 1.0), weighted by librosa's mel filterbank (Slaney mel scale, triangles of peak 1, ``norm=None``),
    then natural log of ``max(x, eps)`` (magenta's ``safe_log``). ``fmax`` is capped at Nyquist; None means
    Nyquist. ``n_fft`` None means a 64 ms window (1024 at 16 kHz, 3072 at 48 kHz).

    Args:
        audio: [B, n] (or [n]) waveform. sample_rate, fmin, fmax: Hz. n_fft: samples.
    Returns:
        [B, F, n_mels] natural-log magnitude, F = n // hop; silence reads ``log(eps)`` (about -11.5).
    """
    audio = _as_batch(audio)
    hop = frame_hop(sample_rate, frame_rate)
    fmax = sample_rate / 2.0 if fmax is None else min(float(fmax), sample_rate / 2.0)
    n_fft = window_samples(sample_rate, 0.064) if n_fft is None else int(n_fft)
    spec = _centred_stft(audio, n_fft, hop)
    mag = spec.abs() * (2.0 / (0.5 * n_fft))                                # periodic Hann sums to n_fft/2
    basis = torch.as_tensor(_mel_basis(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax),
                            dtype=mag.dtype, device=mag.device)             # [n_mels, K]
    mel = torch.matmul(basis, mag)                                          # [B, n_mels, F]
    return mel.clamp_min(eps).log().transpose(1, 2)


def _yin_frame_length(sample_rate: int, fmin: float) -> int:
    """Shortest even frame that holds two periods of fmin (what librosa.yin asks for)."""
    n = 2 * int(np.ceil(sample_rate / fmin)) + 2
    return n + (n % 2)


class _Periodicity:
    """Normalised autocorrelation of frames at fractional lags.

    frames: [F, L] samples. ``r(lags)`` for lags [F] (0 < lag < L, samples) returns
    acf(T) / sqrt(E[0, L-T) * E[T, L)) in [0, 1] (negative correlation counts as 0): the acf is evaluated
    between integer lags by band-limited (DFT-series) interpolation, the energies by linear interpolation of
    the running sum of squares. Normalising by the overlapping parts' energies removes the short-lag bias of
    the raw acf (and of YIN), so its maximum sits at the true period.
    """

    def __init__(self, frames: np.ndarray, min_lag: float, max_lag: float):
        self.n_frames, self.length = frames.shape
        self.min_lag, self.max_lag = min_lag, max_lag
        self.n = scipy.fft.next_fast_len(self.length + int(np.ceil(max_lag)) + 2, real=True)  # no wrap
        coef = np.full(self.n // 2 + 1, 2.0 / self.n, dtype=np.float32)
        coef[0] = 1.0 / self.n
        if self.n % 2 == 0:
            coef[-1] = 1.0 / self.n
        spec = scipy.fft.rfft(frames.astype(np.float32), n=self.n, axis=-1)
        self.power = (spec.real ** 2 + spec.imag ** 2) * coef                # [F, K] float32
        self.cycles = np.arange(self.n // 2 + 1, dtype=np.float64) / self.n  # bin k -> k / n cycles/sample
        self.csum = np.concatenate([np.zeros((self.n_frames, 1)), np.cumsum(frames ** 2, axis=-1)], axis=-1)
        self.rows = np.arange(self.n_frames)

    def _energy_upto(self, pos: np.ndarray) -> np.ndarray:                  # sum of y^2 over [0, pos)
        lo = np.clip(np.floor(pos).astype(int), 0, self.length - 1)
        frac = pos - lo
        return (1 - frac) * self.csum[self.rows, lo] + frac * self.csum[self.rows, lo + 1]

    def _normalise(self, acf: np.ndarray, lag: np.ndarray) -> np.ndarray:
        e_head = self._energy_upto(self.length - lag)                       # y[0 : L-T]
        e_tail = self.csum[:, -1] - self._energy_upto(lag)                  # y[T : L]
        denom = np.sqrt(np.maximum(e_head * e_tail, 0.0))
        return np.where(denom > 1e-12, acf / np.maximum(denom, 1e-30), 0.0)

    def _acf3(self, lag: np.ndarray, step) -> tuple[np.ndarray, ...]:
        """acf at lag - step, lag, lag + step from one cos and one sin of the centre phase."""
        cyc = lag[:, None] * self.cycles
        cyc -= np.rint(cyc)                                                  # wrap in float64 ...
        theta = (2.0 * np.pi * cyc).astype(np.float32)                       # ... then fast float32 trig
        pc = self.power * np.cos(theta)
        ps = self.power * np.sin(theta)
        centre = pc.sum(-1, dtype=np.float64)
        if np.ndim(step) == 0:                                               # same step for all frames
            w = (2.0 * np.pi * step * self.cycles).astype(np.float32)
            even, odd = (pc @ np.cos(w)).astype(np.float64), (ps @ np.sin(w)).astype(np.float64)
        else:                                                                # per-frame step [F]
            w = (2.0 * np.pi * step[:, None] * self.cycles).astype(np.float32)
            even = (pc * np.cos(w)).sum(-1, dtype=np.float64)               # cos(a+b) = cos a cos b - sin a sin b
            odd = (ps * np.sin(w)).sum(-1, dtype=np.float64)
        return even + odd, centre, even - odd

    def __call__(self, lag: np.ndarray) -> np.ndarray:
        return np.clip(self._normalise(self._acf3(lag, 0.0)[1], lag), 0.0, 1.0)

    def refine(self, lag: np.ndarray, n_iter: int = 4) -> np.ndarray:
        """Move each lag to the nearby maximum of r by repeated 3-point parabolic fits.

        Steps start at max(0.25, lag / 256) samples and halve; each move is capped at max(1, lag / 64)
        samples (YIN's bias reaches ~1.5 % of the period near fmin); lags stay in [min_lag, max_lag]."""
        step = np.maximum(0.25, lag / 256.0)
        cap = np.maximum(1.0, lag / 64.0)
        for _ in range(n_iter):
            lo, mid, hi = (self._normalise(a, lag + d) for a, d in zip(self._acf3(lag, step), (-step, 0.0, step)))
            curv = lo - 2 * mid + hi
            shift = np.where(curv < 0, 0.5 * step * (lo - hi) / np.where(curv < 0, curv, -1.0), 0.0)
            lag = np.clip(lag + np.clip(shift, -cap, cap), self.min_lag, self.max_lag)
            step = step * 0.5
        return lag


_F0_CHUNK_FRAMES = 2048                                                    # ~8 s at 250 Hz


def _f0_chunk(piece: np.ndarray, sample_rate: int, hop: int, length: int, fmin: float, fmax: float,
              silence_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw f0 (Hz) and confidence for the frames of ``piece`` (frame j = piece[j*hop : j*hop + length])."""
    frames = librosa.util.frame(piece, frame_length=length, hop_length=hop, axis=0)   # [F, L] view
    f0 = librosa.yin(piece.astype(np.float32), fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=length,
                     hop_length=hop, center=False)
    f0 = np.nan_to_num(np.clip(f0, fmin, fmax), nan=fmin)
    periodicity = _Periodicity(frames, min_lag=sample_rate / fmax, max_lag=sample_rate / fmin)
    f0 = sample_rate / periodicity.refine(sample_rate / f0)
    conf = periodicity(sample_rate / f0)
    rms_db = 10.0 * np.log10(np.mean(frames ** 2, axis=-1) + 1e-20)
    conf[rms_db < silence_db] = 0.0
    return f0, conf


def estimate_f0(audio: np.ndarray, sample_rate: int, frame_rate: float = 250.0, fmin: float = 30.0,
                fmax: float = 2000.0, voicing_threshold: float = 0.5,
                silence_db: float = -70.0) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency and periodicity confidence of a mono signal.

    f0 comes from ``librosa.yin`` (cumulative-mean-normalised difference + parabolic refinement) on frames
    of two periods of ``fmin`` centred on each frame time. The confidence is the normalised
    autocorrelation of the same frame at the detected period (1 = perfectly periodic, ~0 for noise), and 0
    for frames whose RMS is below ``silence_db`` dBFS. Frames with confidence below ``voicing_threshold``
    keep their low confidence but get the f0 of the nearest voiced frame (held, so a synth fed this f0
    does not jump around in rests); with no voiced frame at all, f0 is the median raw estimate.

    Why not torchcrepe / pesto: both import torchaudio, whose PyPI build fails to load beside a CPU-only
    torch (see reference/environment.md), so they cannot be imported in a plain CPU install; CREPE-full
    also runs ~3x slower than real time on a 2-core CPU. YIN needs no weights, is deterministic, and with
    the refinement here is sub-cent accurate on steady tones and >= 10x faster than real time
    (see bench/bench_losses.py).

    The analysis frame spans two periods of ``fmin`` (67 ms at the default 30 Hz), which smooths fast pitch
    movement: a 5.5 Hz, +-50 cent vibrato reads ~10 cents off at its steepest with fmin=30 and ~3 cents
    with fmin=60. Pass the instrument's real lower limit when it is known.

    Args:
        audio: [n] waveform (float). sample_rate, fmin, fmax: Hz. frame_rate: Hz (hop must be integral).
    Returns:
        (f0_hz [F], confidence [F]) float32 arrays, F = n // hop, frame i centred on sample i * hop.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"estimate_f0 takes mono [n] audio, got shape {audio.shape}")
    hop = frame_hop(sample_rate, frame_rate)
    n_frames = audio.shape[0] // hop
    if n_frames == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    fmax = min(float(fmax), sample_rate / 2.0)
    length = _yin_frame_length(sample_rate, fmin)
    padded = np.pad(audio, (length // 2, length // 2))                     # frame i starts at i * hop
    f0 = np.empty(n_frames)
    conf = np.empty(n_frames)
    for start in range(0, n_frames, _F0_CHUNK_FRAMES):                      # bounded memory on long files
        count = min(_F0_CHUNK_FRAMES, n_frames - start)
        piece = padded[start * hop : (start + count - 1) * hop + length]
        f0[start : start + count], conf[start : start + count] = _f0_chunk(piece, sample_rate, hop, length,
                                                                           fmin, fmax, silence_db)

    voiced = np.flatnonzero(conf >= voicing_threshold)
    if voiced.size == 0:
        f0 = np.full_like(f0, np.median(f0))
    elif voiced.size < n_frames:                                            # hold the nearest voiced value
        idx = np.arange(n_frames)
        right = np.clip(np.searchsorted(voiced, idx), 0, voiced.size - 1)
        left = np.clip(right - 1, 0, voiced.size - 1)
        nearest = np.where(np.abs(voiced[left] - idx) <= np.abs(voiced[right] - idx), voiced[left], voiced[right])
        f0 = f0[nearest]
    return f0.astype(np.float32), conf.astype(np.float32)


def estimate_f0_batch(audios: Sequence[np.ndarray] | np.ndarray, sample_rate: int, **kwargs
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``estimate_f0`` over a list of mono clips (any lengths) or the rows of a [B, n] array."""
    return [estimate_f0(np.asarray(a), sample_rate, **kwargs) for a in audios]


def framed_power(audio: np.ndarray, n_frames: int, sample_rate: int, frame_rate: float, window: np.ndarray,
                 chunk_frames: int = 2048):
    """Power spectra of windows centred on the frames: yields ``(start, stop, power [stop - start, bins])``
    chunk by chunk (bounded memory). Frame ``i`` is centred on sample ``i * hop``; the signal is zero-padded."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop, n_fft = frame_hop(sample_rate, frame_rate), window.size
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + hop * max(0, n_frames - x.size // hop)))
    for start in range(0, n_frames, chunk_frames):
        stop = min(n_frames, start + chunk_frames)
        frames = librosa.util.frame(padded[start * hop:(stop - 1) * hop + n_fft], frame_length=n_fft,
                                    hop_length=hop, axis=0)
        yield start, stop, np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2


def measured_harmonic_distribution(audio: np.ndarray, f0_hz: np.ndarray, sample_rate: int,
                                   frame_rate: float = 250.0, n_harmonics: int = 60, n_fft: int = 1024,
                                   noise_magnitudes: np.ndarray | None = None,
                                   excitation_power: float = 1.0 / 3.0, normalize: bool = True) -> np.ndarray:
    """Harmonic amplitude distribution measured from a mono signal with a known f0 (no model).

    Each frame (Hann window of ``n_fft`` samples centred on sample ``i * hop``) gets its power spectrum; bin
    power within half a harmonic spacing of ``k * f0`` is summed into harmonic ``k`` (k = 1..n_harmonics,
    below Nyquist) and the square root taken, so a sinusoid of amplitude ``a`` contributes ``~a``. The
    amplitudes are normalised to sum to 1 per frame, like the synthesizer's ``harmonic_distribution``.

    Noise falls into every harmonic's bins and flattens the distribution. Given ``noise_magnitudes``
    ([frames, bands], e.g. :func:`measured_noise_magnitudes`), its expected power is subtracted from each
    bin first (spectral subtraction; harmonics that end up with no energy get 0).

    Args:
        audio: [n] waveform. f0_hz: [frames] Hz at ``frame_rate`` (e.g. from :func:`estimate_f0`).
        n_fft: window length in samples (64 ms at 16 kHz resolves harmonics of f0 >= ~50 Hz).
        excitation_power: variance of the noise excitation the magnitudes refer to (uniform [-1, 1): 1/3).
        normalize: False returns each harmonic's amplitude instead (linear; a sinusoid of amplitude ``a``
            reads ``a``: ``2 sqrt(E / (n_fft * sum(window ** 2)))`` from its bins' power ``E``).
    Returns:
        [frames, n_harmonics] float32, rows summing to 1 (all zeros where there is no energy), or the
        amplitudes when ``normalize`` is False.
    """
    f0 = np.maximum(np.asarray(f0_hz, dtype=np.float64).reshape(-1), 1e-3)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    out = np.zeros((f0.size, n_harmonics), dtype=np.float64)
    window = np.hanning(n_fft)
    if noise_magnitudes is not None:
        noise = np.asarray(noise_magnitudes, dtype=np.float64)
        band = np.rint(freqs / (sample_rate / 2) * (noise.shape[1] - 1)).astype(np.int64)
        noise_power = excitation_power * np.sum(window ** 2) * noise[:, band] ** 2  # [frames, bins]
    for start, stop, power in framed_power(audio, f0.size, sample_rate, frame_rate, window):
        if noise_magnitudes is not None:
            power = power - noise_power[start:stop]
        k = np.rint(freqs[None, :] / f0[start:stop, None]).astype(np.int64)  # nearest harmonic of each bin
        valid = (k >= 1) & (k <= n_harmonics) & (k * f0[start:stop, None] < sample_rate / 2)
        rows = np.broadcast_to(np.arange(stop - start)[:, None], k.shape)
        flat = (rows * n_harmonics + k - 1)[valid]
        energy = np.bincount(flat, weights=power[valid], minlength=(stop - start) * n_harmonics)
        out[start:stop] = np.sqrt(np.maximum(energy.reshape(stop - start, n_harmonics), 0.0))
    if not normalize:
        return (2.0 * out / np.sqrt(n_fft * np.sum(window ** 2))).astype(np.float32)
    total = out.sum(-1, keepdims=True)
    return np.where(total > 0, out / np.maximum(total, 1e-30), 0.0).astype(np.float32)


def measured_noise_magnitudes(audio: np.ndarray, f0_hz: np.ndarray, sample_rate: int, frame_rate: float = 250.0,
                              n_bands: int = 65, n_fft: int = 1024, excitation_power: float = 1.0 / 3.0
                              ) -> np.ndarray:
    """Filtered-noise band magnitudes measured from a mono signal with a known f0 (no model): the inverse of
    :class:`~midi_ddsp.synthesis.ddsp.synths.FilteredNoise` on the spectrum between the harmonics.

    Each frame gets a Blackman-Harris power spectrum (``n_fft`` samples, sidelobes below -92 dB, so a
    harmonic does not leak into bins more than 4 bins away). Bins at least 4.5 bins from every harmonic of
    ``f0`` hold only noise; their mean power in each of the ``n_bands`` bands (evenly spaced centres from
    0 Hz to Nyquist, the synthesizer's layout) is converted to a band magnitude with the expected power of
    white noise of variance ``excitation_power`` (uniform [-1, 1): 1/3) through a filter of that
    magnitude. Bands with no noise-only bin (a harmonic on the band centre) are interpolated in dB from the
    nearest bands that have one. Below ``9 * sample_rate / n_fft`` Hz (141 Hz at the defaults) no bin lies
    far enough from two harmonics: pass a longer ``n_fft`` for such low notes.

    Args:
        audio: [n] waveform. f0_hz: [frames] Hz at ``frame_rate`` (0 or unvoiced: no harmonic is masked).
    Returns:
        [frames, n_bands] float32 linear magnitudes, on the scale of the synthesizer's ``noise_magnitudes``.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    window = scipy.signal.get_window("blackmanharris", n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = np.rint(freqs / (sample_rate / 2) * (n_bands - 1)).astype(np.int64)  # nearest band centre
    bin_hz = sample_rate / n_fft
    out = np.zeros((f0.size, n_bands), dtype=np.float64)
    for start, stop, power in framed_power(audio, f0.size, sample_rate, frame_rate, window):
        f = np.maximum(f0[start:stop, None], 1e-3)
        k = np.maximum(np.rint(freqs[None, :] / f), 1.0)
        near = np.abs(freqs[None, :] - k * f) / bin_hz < 4.5
        clean = ~(near & (k * f < sample_rate / 2) & (f0[start:stop, None] > 0))
        n = stop - start
        rows = (np.arange(n)[:, None] * n_bands + band[None, :])
        total = np.bincount(rows[clean], weights=power[clean], minlength=n * n_bands).reshape(n, n_bands)
        count = np.bincount(rows[clean], minlength=n * n_bands).reshape(n, n_bands)
        out[start:stop] = _fill_bands(total / np.maximum(count, 1), count > 0)
    return np.sqrt(out / (excitation_power * np.sum(window ** 2))).astype(np.float32)


def _fill_bands(power: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per row, replace unknown bands by linear interpolation in log power between the nearest known bands
    (nearest value at the ends); rows with no known band become 0."""
    n, k = power.shape
    idx = np.broadcast_to(np.arange(k), (n, k))
    left = np.maximum.accumulate(np.where(known, idx, -1), axis=1)
    right = np.flip(np.minimum.accumulate(np.flip(np.where(known, idx, k), 1), axis=1), 1)
    has_left, has_right = left >= 0, right < k
    log_p = np.log(np.maximum(power, 1e-30))
    rows = np.arange(n)[:, None]
    lv = log_p[rows, np.clip(left, 0, k - 1)]
    rv = log_p[rows, np.clip(right, 0, k - 1)]
    t = np.where(has_left & has_right, (idx - left) / np.maximum(right - left, 1), np.where(has_left, 0.0, 1.0))
    filled = np.exp(lv + t * (rv - lv))
    return np.where(known, power, np.where(has_left | has_right, filled, 0.0))
