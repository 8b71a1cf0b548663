"""Output level: renders and transfers normalised to a loudness target (ITU-R BS.1770-4 via pyloudnorm).

The CLI writes ``render`` and ``transfer`` outputs at ``TARGET_LUFS`` (-16 LUFS integrated, the usual level
for streamed and downloaded music) with the true peak (4x oversampled, BS.1770-4 Annex 2) at most
``TRUE_PEAK_DBFS`` (-1 dBFS): one gain for the whole piece, so stems keep their balance and sum to the mix.
When reaching the target would put the true peak above the ceiling, a look-ahead peak limiter (20 ms, the
same gain curve for every stem) takes the loudest moments down, by at most 6 dB; a piece that would need
more stays below the target (reported). ``--loudness LUFS`` sets another target, ``--no-normalize``
keeps the models' raw level (then only the anti-clipping gain of the mix applies). The Python API renders
at the raw level; :func:`normalize` is the same step for its results.

A global gain depends on the whole piece, so with normalisation an edit of one note changes the level of
everything a little; the local-edit promise (README) is about the raw level (``--no-normalize``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TARGET_LUFS = -16.0
TRUE_PEAK_DBFS = -1.0
MIN_LUFS, MAX_LUFS = -70.0, 0.0
SILENT_LUFS = -70.0  # BS.1770's absolute gate: quieter audio is not normalised
MAX_LIMIT_DB = 6.0  # the peak limiter takes at most this much off the loudest moments
LIMITER_WINDOW_S = 0.02  # its gain changes over this long (no clicks, little distortion)


@dataclass
class Level:
    """The gain applied (a number, or a curve ``[samples]`` where the limiter acted) and the levels before and
    after (LUFS integrated, dBFS true peak); ``peak_limited``: the target was not reached."""

    gain: float | np.ndarray
    lufs_before: float
    lufs_after: float
    true_peak_dbfs: float
    peak_limited: bool = False


def _meter(sample_rate: int, n: int):
    import pyloudnorm

    block = min(0.4, n / float(sample_rate))  # BS.1770 blocks are 400 ms; a shorter signal is one block
    return pyloudnorm.Meter(int(sample_rate), block_size=block)


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of mono ``audio [samples]`` in LUFS (-inf for silence)."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.size < 16 or not np.any(x):
        return -math.inf
    with np.errstate(divide="ignore"):
        value = float(_meter(sample_rate, x.size).integrated_loudness(x))
    return value if math.isfinite(value) else -math.inf


def true_peak(audio: np.ndarray) -> float:
    """True peak (linear) of ``audio [samples]``: the largest magnitude of the signal oversampled 4x."""
    from scipy.signal import resample_poly

    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return 0.0
    return float(max(np.max(np.abs(resample_poly(x, 4, 1))), np.max(np.abs(x))))


def check_target(lufs: float) -> float:
    from .errors import MidiDDSPError

    if not (isinstance(lufs, (int, float)) and math.isfinite(lufs) and MIN_LUFS <= lufs <= MAX_LUFS):
        raise MidiDDSPError(f"--loudness must be between {MIN_LUFS:g} and {MAX_LUFS:g} LUFS, got {lufs}")
    return float(lufs)


def _tp_envelope(x: np.ndarray) -> np.ndarray:
    """Per-sample true-peak magnitude ``[n]``: the largest of each sample and its 4x-oversampled neighbours."""
    from scipy.signal import resample_poly

    up = np.abs(resample_poly(x, 4, 1))[:4 * x.size].reshape(x.size, 4).max(1)
    return np.maximum(up, np.abs(x))


def limiter_gain(x: np.ndarray, sample_rate: int, ceiling: float, window_s: float = LIMITER_WINDOW_S) -> np.ndarray:
    """A smooth gain curve ``[n]`` (<= 1) that keeps the true peak of ``x * gain`` at most ``ceiling``: the
    needed reduction, spread by a minimum filter over ``2 * window_s`` and averaged over ``window_s`` (so it
    never falls short of the need, and changes over ``window_s``: 20 ms)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(_tp_envelope(x), 1e-12))
    if np.all(need >= 1.0):
        return np.ones_like(need)
    w = max(int(window_s * sample_rate), 1)
    held = minimum_filter1d(need, 2 * w + 1, mode="nearest")
    return np.minimum(uniform_filter1d(held, w | 1, mode="nearest"), 1.0)


def level_gain(mix: np.ndarray, sample_rate: int, target_lufs: float = TARGET_LUFS,
               ceiling_dbfs: float = TRUE_PEAK_DBFS) -> Level:
    """The gain (a number, or a smooth curve ``[n]`` where the peak limiter acts) that takes ``mix`` to
    ``target_lufs`` with its true peak at most ``ceiling_dbfs``; the limiter takes at most ``MAX_LIMIT_DB`` off
    the loudest moments, beyond that the target is not reached (``peak_limited``)."""
    x = np.asarray(mix, dtype=np.float64).reshape(-1)
    before = integrated_loudness(x, sample_rate)
    tp = true_peak(x)
    if before < SILENT_LUFS or tp <= 0:
        return Level(1.0, before, before, 20 * math.log10(tp) if tp > 0 else -math.inf)
    ceiling = 10.0 ** (ceiling_dbfs / 20.0) * (1.0 - 1e-4)
    gain: float | np.ndarray = 10.0 ** ((target_lufs - before) / 20.0)
    limited = False
    if gain * tp > ceiling:
        for _ in range(3):  # limiting takes some loudness off: make it up and limit again
            g = float(np.max(gain)) if isinstance(gain, np.ndarray) else gain
            curve = limiter_gain(x * g, sample_rate, ceiling)
            if float(curve.min()) < 10.0 ** (-MAX_LIMIT_DB / 20.0):  # too much: limit the depth, miss the target
                g = min(g, ceiling / tp * 10.0 ** (MAX_LIMIT_DB / 20.0))
                curve = limiter_gain(x * g, sample_rate, ceiling)
                gain, limited = g * curve, True
                break
            gain = g * curve
            short = target_lufs - integrated_loudness(x * gain, sample_rate)
            if short < 0.05:
                break
            gain = g * 10.0 ** (short / 20.0)
        if not isinstance(gain, np.ndarray):  # ended after a make-up step: limit that
            gain = gain * limiter_gain(x * gain, sample_rate, ceiling)
        over = true_peak(x * gain) / ceiling
        if over > 1.0:
            gain = gain / over
    y = x * gain
    after = integrated_loudness(y, sample_rate)
    return Level(gain, before, after, 20 * math.log10(max(true_peak(y), 1e-12)),
                 limited or after < target_lufs - 0.1)


def normalize(mix: np.ndarray, stems: np.ndarray | None, sample_rate: int, target_lufs: float = TARGET_LUFS,
              ceiling_dbfs: float = TRUE_PEAK_DBFS) -> tuple[np.ndarray, np.ndarray | None, Level]:
    """``(mix, stems, level)`` at the target (see the module docstring): the same gain, a number or a curve,
    for the mix and every stem, so the stems still sum to the mix; float32 copies."""
    level = level_gain(mix, sample_rate, target_lufs, ceiling_dbfs)
    g = np.asarray(level.gain, dtype=np.float32)
    out_stems = None if stems is None else (np.asarray(stems, np.float32) * g)
    return np.asarray(mix, np.float32) * g, out_stems, level


def describe(level: Level) -> str:
    """``-16.0 LUFS, true peak -3.2 dBFS`` (and why the target was not reached, when it was not)."""
    if not math.isfinite(level.lufs_after):
        return "silent"
    text = f"{level.lufs_after:.1f} LUFS, true peak {level.true_peak_dbfs:.1f} dBFS"
    if level.peak_limited:
        text += f" (short of the target: its peaks would need more than {MAX_LIMIT_DB:g} dB of limiting)"
    elif isinstance(level.gain, np.ndarray) and float(np.min(level.gain)) < float(np.max(level.gain)) * 0.999:
        text += (f", peaks limited by up to "
                 f"{20 * math.log10(float(np.max(level.gain)) / float(np.min(level.gain))):.1f} dB")
    return text


__all__ = ["Level", "integrated_loudness", "true_peak", "level_gain", "normalize", "describe", "check_target",
           "TARGET_LUFS", "TRUE_PEAK_DBFS"]
