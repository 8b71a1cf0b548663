"""Signal measurements for judging realism against reference audio (numpy, not differentiable)."""
from __future__ import annotations

import numpy as np


def _frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[n_frames, n_fft] Hann-windowed frames, frame i centred on sample i * hop."""
    pad = np.pad(audio, (n_fft // 2, n_fft // 2))
    n = 1 + (pad.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return pad[idx] * np.hanning(n_fft)[None, :]


def harmonic_to_noise_ratio(audio: np.ndarray, f0_hz: np.ndarray, sample_rate: int, frame_rate: float = 250.0,
                            mask: np.ndarray | None = None, n_fft: int = 2048, max_harmonic_hz: float = 4000.0
                            ) -> float:
    """Median over frames of the energy near harmonics over the energy between them, in dB.

    Energy within +-f0/4 of k*f0 (k*f0 < ``max_harmonic_hz``) counts as harmonic; the rest of that band
    counts as noise. A clean periodic tone reads high (> 20 dB); a broadband noise floor lowers it.

    Args:
        audio: [samples]. f0_hz: [frames] at ``frame_rate``. mask: [frames] bool, frames to use (e.g. inside
            notes, voiced).
    """
    hop = int(round(sample_rate / frame_rate))
    spec = np.abs(np.fft.rfft(_frames(audio, n_fft, hop), axis=1)) ** 2
    n = min(spec.shape[0], f0_hz.shape[0])
    spec, f0 = spec[:n], f0_hz[:n]
    use = (f0 > 20) if mask is None else (mask[:n] & (f0 > 20))
    if not use.any():
        return float("nan")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    spec, f0 = spec[use], f0[use, None]
    band = (freqs[None, :] >= f0 * 0.75) & (freqs[None, :] < np.minimum(max_harmonic_hz, sample_rate / 2))
    rel = freqs[None, :] / f0
    near = np.abs(rel - np.round(rel)) < 0.25
    harm = (spec * (band & near)).sum(1)
    noise = (spec * (band & ~near)).sum(1) + 1e-12
    return float(np.median(10 * np.log10(harm / noise + 1e-12)))


def transient_ratio_db(audio: np.ndarray, event_samples: np.ndarray, sample_rate: int, window_s: float = 0.01,
                       cutoff_hz: float = 3000.0) -> float:
    """How much high-frequency energy jumps at events (e.g. note changes), in dB: median over events of the
    peak short-time energy above ``cutoff_hz`` within +-``window_s`` of the event, over the median of that
    energy over the whole signal. Clicks and blips at note boundaries raise it."""
    n_fft, hop = 256, 32
    spec = np.abs(np.fft.rfft(_frames(audio, n_fft, hop), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    hf = spec[:, freqs >= cutoff_hz].sum(1) + 1e-12
    ref = np.median(hf)
    w = max(1, int(window_s * sample_rate / hop))
    peaks = [hf[max(0, e // hop - w): e // hop + w + 1].max() for e in np.asarray(event_samples, int)
             if 0 <= e // hop < hf.size]
    if not peaks:
        return float("nan")
    return float(10 * np.log10(np.median(peaks) / ref))


def release_time_s(loudness_db: np.ndarray, offset_frames: np.ndarray, frame_rate: float = 250.0,
                   drop_db: float = 20.0, max_s: float = 1.5) -> float:
    """Median time after note offsets for the loudness to fall ``drop_db`` below its level at the offset, in
    seconds (only offsets followed by at least ``max_s`` of rest should be passed)."""
    times = []
    horizon = int(max_s * frame_rate)
    for f in np.asarray(offset_frames, int):
        seg = loudness_db[f:f + horizon]
        if seg.size < 2:
            continue
        below = np.flatnonzero(seg <= seg[0] - drop_db)
        times.append((below[0] if below.size else seg.size) / frame_rate)
    return float(np.median(times)) if times else float("nan")


def f0_micro_variation_cents(f0_hz: np.ndarray, note_index: np.ndarray, min_frames: int = 50,
                             outlier_cents: float = 300.0) -> float:
    """Median over notes of the std (cents) of f0 about the note's own median, on notes >= ``min_frames``.

    A flat synthetic line reads ~0; played instruments read several cents (more with vibrato). Frames more
    than ``outlier_cents`` from the note's median are left out, so a pitch tracker's octave errors do not
    pass for vibrato.
    """
    cents = 1200 * np.log2(np.maximum(f0_hz, 1e-3) / 440.0)
    stds = []
    for k in np.unique(note_index[note_index >= 0]):
        sel = note_index == k
        if sel.sum() >= min_frames:
            inner = cents[np.flatnonzero(sel)[5:-5]]  # skip the transition frames at both ends
            inner = inner[np.abs(inner - np.median(inner)) <= outlier_cents]
            if inner.size > 10:
                stds.append(inner.std())
    return float(np.median(stds)) if stds else float("nan")
