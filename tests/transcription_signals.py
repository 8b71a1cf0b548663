"""Synthetic monophonic recordings whose notes are known (numpy only), for the transcription tests.

A melody is a list of ``(pitch, onset_s, offset_s)``; notes whose offset equals the next onset are played
legato (no amplitude dip, the pitch glides over ``glide_s``), others get an attack and a release. The tone is
additive and harmonic (amplitude 1/k, ``n_harmonics`` below Nyquist), with optional vibrato (depth in cents,
rate in Hz), a little attack noise, background noise at a given SNR, and a synthetic room (exponentially
decaying noise impulse response).
"""
from __future__ import annotations

import numpy as np


def melody_curves(notes, sample_rate: int, duration_s: float, vibrato_cents: float = 0.0,
                  vibrato_hz: float = 5.5, glide_s: float = 0.02, attack_s: float = 0.02, release_s: float = 0.04,
                  detune_cents: float = 0.0, level_db=None):
    """Per-sample f0 (Hz) and amplitude envelope of a melody."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    midi = np.zeros(n)
    amp = np.zeros(n)
    notes = sorted(notes, key=lambda x: x[1])
    level_db = [0.0] * len(notes) if level_db is None else list(level_db)
    for i, (p, a, b) in enumerate(notes):
        legato_in = i > 0 and abs(notes[i - 1][2] - a) < 1e-9
        legato_out = i + 1 < len(notes) and abs(notes[i + 1][1] - b) < 1e-9
        sel = (t >= a) & (t < b + (0 if legato_out else release_s))
        tau = t[sel] - a
        env = np.ones(tau.size)
        if not legato_in:
            env *= np.clip(tau / attack_s, 0, 1)
        if not legato_out:
            env *= np.clip(1 - (t[sel] - b) / release_s, 0, 1)
        g = 10 ** (level_db[i] / 20)
        amp[sel] = np.maximum(amp[sel], g * env) if not legato_in else g * env
        vib = vibrato_cents * np.sin(2 * np.pi * vibrato_hz * tau) * np.clip(tau / 0.15, 0, 1)
        cur = p + (detune_cents + vib) / 100.0
        if legato_in and glide_s > 0:
            prev = notes[i - 1][0]
            w = np.clip(tau / glide_s, 0, 1)
            cur = prev + (cur - prev) * w
        midi[sel] = cur
    # hold the last pitch in silence (the phase keeps running; amplitude is 0 there)
    filled = midi.copy()
    idx = np.flatnonzero(filled > 0)
    if idx.size:
        last = np.maximum.accumulate(np.where(filled > 0, np.arange(n), 0))
        filled = filled[last]
        filled[:idx[0]] = filled[idx[0]]
    f0 = 440.0 * 2 ** ((filled - 69) / 12)
    return f0, amp


def harmonic_tone(f0, amp, sample_rate: int, n_harmonics: int = 20, seed: int = 0, attack_noise: float = 0.02):
    """Additive harmonic tone from per-sample f0 (Hz) and amplitude; peak about 0.5."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    y = np.zeros_like(f0)
    for k in range(1, n_harmonics + 1):
        alive = k * f0 < 0.45 * sample_rate
        y += alive * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    y *= amp
    if attack_noise:
        y += attack_noise * amp * rng.standard_normal(y.size)
    peak = np.max(np.abs(y)) or 1.0
    return (0.5 * y / peak).astype(np.float32)


def add_noise(y, snr_db: float, seed: int = 1):
    """White noise at ``snr_db`` below the signal's RMS over its sounding part."""
    rng = np.random.default_rng(seed)
    loud = np.abs(y) > 1e-4
    rms = np.sqrt(np.mean(y[loud] ** 2)) if loud.any() else 0.1
    return (y + rng.standard_normal(y.size) * rms * 10 ** (-snr_db / 20)).astype(np.float32)


def add_reverb(y, sample_rate: int, rt60_s: float = 0.4, wet: float = 0.3, seed: int = 2):
    """A synthetic room: decaying noise impulse response (60 dB in ``rt60_s``), mixed ``wet``."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)
    ir /= np.sqrt(np.sum(ir ** 2))
    wet_sig = fftconvolve(y, ir)[: y.size]
    return ((1 - wet) * y + wet * wet_sig).astype(np.float32)


def melody(notes, sample_rate: int = 16000, tail_s: float = 0.5, **kwargs):
    """The audio of ``notes`` (see :func:`melody_curves` for the keyword arguments)."""
    tone_kw = {k: kwargs.pop(k) for k in ("n_harmonics", "seed", "attack_noise") if k in kwargs}
    duration = max(b for _, _, b in notes) + tail_s
    f0, amp = melody_curves(notes, sample_rate, duration, **kwargs)
    return harmonic_tone(f0, amp, sample_rate, **tone_kw)
