"""How MIDI controllers steer a performance (pure numpy; no MIDI parsing, no neural networks).

Where a file carries controllers (see :mod:`midi_ddsp.io.controllers` for how they are read), they act on
three levels: the notes (sustain), the six per-note controls the synthesis generator follows (vibrato,
volume) and the frame-level synthesis parameters (f0, amplitude). A controller that never leaves its
General-MIDI reset value changes nothing.

==========================  =============================================================================
controller                  effect
==========================  =============================================================================
CC64 sustain (>= 64: down)  A note whose release falls while the pedal is down sounds on until the pedal
                            comes up. On a track of a single-line instrument (the programs with a model
                            of their own, winds and brass) never past the next note of the same voice (a
                            monophonic instrument cannot hold two notes): pedalled passages become legato.
                            On a track of a chordal instrument (piano, organ, guitar, ensembles, ...: the
                            programs rendered by strings or brass chosen by pitch) as on a piano, until the
                            same key is struck again, before the track is split into voices: held notes
                            overlap the next ones and become voices of their own. Applied to the notes
                            before the expression model performs them, so the model sees the longer notes.
CC1 modulation              Scales the note's vibrato. With ``m = CC1 / 127``: ``m = 0`` no vibrato,
                            ``m = 0.5`` the vibrato the expression model chose (``v``), ``m = 1`` the
                            strongest vibrato of the corpus (control 1.0); linear in between
                            (``2 m v`` below the middle, ``v + (1 - v)(2 m - 1)`` above). Per note, the
                            vibrato control is set from the note's highest CC1, so the generator samples
                            an f0 with that vibrato; within the note, the vibrato part of the sampled f0
                            (its deviation from the note minus a 0.67 s Hann-smoothed trend, which keeps
                            intonation and glides) is scaled by ``vib(m(t)) / vib(m_max)`` frame by frame,
                            so a swell or a step of CC1 inside a long note is heard.
CC7 volume, CC11            Gain in dB = ``40 log10(CC7 / 127) - 40 log10(100 / 127) + 40 log10(CC11 / 127)``
expression                  (the General-MIDI level-2 curve, relative to the reset values CC7 100 and
                            CC11 127; floored at -60 dB). Across notes: each note's volume control moves by
                            the note's mean gain (in the instrument's normalised volume scale, kept within
                            the corpus range 0..1), so louder notes also *sound* louder (brighter, as the
                            generator learned). Within and beyond that: a frame-level gain on the
                            harmonic amplitude and noise makes up the difference between the requested
                            gain and the change the generator actually made (measured per note, held
                            through the release), smoothed over 20 ms. A crescendo inside one note is
                            therefore exact, and one across notes keeps the timbre of the dynamics.
Pitch bend                  Added to the generator's f0 in semitones (range from RPN 0, else +-2), frame
                            by frame, on top of the pitch the model sampled (its vibrato and intonation
                            stay); the generator then predicts the timbre for the bent f0. Slides and
                            bends of any size the range allows (the model's own f0 deviates at most 4
                            semitones). Bends sent during rests move the pitch the next note starts from.
==========================  =============================================================================

Frame conventions follow :mod:`midi_ddsp.note_level.frames` (frame ``i`` at ``i / frame_rate`` s). Only
loops over notes, never over frames.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from midi_ddsp.note_level.frames import NoteFrames
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence

VOLUME, VIBRATO = CONTROL_NAMES.index("volume"), CONTROL_NAMES.index("vibrato")
MIN_GAIN_DB = -60.0
REFERENCE_CC7 = 100.0  # GM reset values: no gain
REFERENCE_CC11 = 127.0
GAIN_SMOOTH_S = 0.02
VIBRATO_TREND_S = 2.0 / 3.0  # Hann window whose first spectral null is at 3 Hz (below the vibrato band)


# ---------------------------------------------------------------------------------------------- sustain
def _pedal_up(off: np.ndarray, pedal_intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """Per offset: the end of the pedal-down interval ``[down, up)`` it falls in, else the offset itself."""
    iv = np.asarray(pedal_intervals, dtype=np.float64).reshape(-1, 2)
    iv = iv[np.argsort(iv[:, 0])]
    k = np.searchsorted(iv[:, 0], off, side="right") - 1  # the last interval that began at or before the offset
    inside = (k >= 0) & (off < iv[np.maximum(k, 0), 1])
    return np.where(inside, iv[np.maximum(k, 0), 1], off)


def sustained_offsets(onsets_s, offsets_s, pedal_intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """Note offsets after the sustain pedal (seconds, float64 ``[n_notes]``; never shorter than before).

    A note whose offset lies in a pedal-down interval ``[down, up)`` is held to ``up``, but not past the
    next onset (``onsets_s`` sorted, one monophonic voice).
    """
    on = np.asarray(onsets_s, dtype=np.float64).reshape(-1)
    off = np.asarray(offsets_s, dtype=np.float64).reshape(-1).copy()
    if not len(pedal_intervals) or off.size == 0:
        return off
    nxt = np.append(on[1:], np.inf)
    return np.maximum(off, np.minimum(_pedal_up(off, pedal_intervals), nxt))


def pedal_held_offsets(pitches, onsets_s, offsets_s, pedal_intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """Note offsets after the sustain pedal on a chordal (piano-like) track, before it is split into voices:
    a note whose offset lies in a pedal-down interval ``[down, up)`` is held to ``up``, but not past the
    next onset of the same pitch (the key struck again). Seconds, float64 ``[n_notes]``; never shorter.
    Notes in any order; they may overlap."""
    pitch = np.asarray(pitches).reshape(-1)
    on = np.asarray(onsets_s, dtype=np.float64).reshape(-1)
    off = np.asarray(offsets_s, dtype=np.float64).reshape(-1).copy()
    if not len(pedal_intervals) or off.size == 0:
        return off
    order = np.lexsort((on, pitch))                   # by pitch, then onset
    nxt = np.full(on.size, np.inf)
    same = pitch[order][1:] == pitch[order][:-1]
    nxt[order[:-1][same]] = on[order][1:][same]
    return np.maximum(off, np.minimum(_pedal_up(off, pedal_intervals), nxt))


def apply_sustain(sequence: NoteSequence, pedal_intervals: Sequence[tuple[float, float]]) -> NoteSequence:
    """``sequence`` with its notes held by the sustain pedal (see :func:`sustained_offsets`)."""
    if not len(sequence) or not len(pedal_intervals):
        return sequence
    new = sustained_offsets(sequence.onsets_s, sequence.offsets_s, pedal_intervals)
    notes = tuple(n if o == n.offset_s else Note(n.pitch, n.onset_s, float(o), n.velocity, n.instrument)
                  for n, o in zip(sequence.notes, new))
    return NoteSequence(notes, sequence.instrument, sequence.name)


# --------------------------------------------------------------------------------------------- loudness
def expression_gain_db(cc7=None, cc11=None) -> np.ndarray:
    """Gain in dB per frame from CC7 and/or CC11 (``[F]`` raw values 0..127; None = not used), relative to
    the GM reset values (CC7 100, CC11 127): float64 ``[F]``, >= :data:`MIN_GAIN_DB`."""
    parts = []
    if cc7 is not None:
        parts.append(40.0 * np.log10(np.maximum(np.asarray(cc7, np.float64), 1e-3) / REFERENCE_CC7))
    if cc11 is not None:
        parts.append(40.0 * np.log10(np.maximum(np.asarray(cc11, np.float64), 1e-3) / REFERENCE_CC11))
    if not parts:
        raise ValueError("expression_gain_db needs cc7 or cc11")
    return np.maximum(np.sum(parts, axis=0), MIN_GAIN_DB)


def note_means(x, frames: NoteFrames) -> np.ndarray:
    """Mean of frame values ``x [F]`` over each note's frames: float64 ``[n_notes]`` (NaN: no frame)."""
    x = np.asarray(x, dtype=np.float64)
    s, e = frames.note_start, frames.note_end
    c = np.concatenate([[0.0], np.cumsum(x)])
    n = e - s
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (c[e] - c[s]) / np.maximum(n, 1), np.nan)


def note_max(x, frames: NoteFrames) -> np.ndarray:
    """Maximum of ``x [F]`` over each note's frames, float64 ``[n_notes]`` (NaN: no frame)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(frames.n_notes, np.nan)
    for k in np.flatnonzero(frames.note_end > frames.note_start):  # loop over notes
        out[k] = x[frames.note_start[k]:frames.note_end[k]].max()
    return out


def steer_volume(volume, gain_db_per_note, span_db) -> np.ndarray:
    """Per-note volume controls moved by the notes' mean gain: ``volume + gain / span`` kept within
    ``[min(volume, 0), max(volume, 1)]`` (the corpus range; the frame gain does the rest).

    Args:
        volume: ``[n_notes]`` normalised volume controls.
        gain_db_per_note: ``[n_notes]`` dB (NaN: unchanged).
        span_db: dB per unit of the normalised volume (the normalizer's ``high - low`` for the instrument).
    """
    v = np.asarray(volume, dtype=np.float64)
    g = np.nan_to_num(np.asarray(gain_db_per_note, dtype=np.float64), nan=0.0)
    return np.clip(v + g / max(float(span_db), 1e-6), np.minimum(v, 0.0), np.maximum(v, 1.0))


def hold_per_note(values, frames: NoteFrames) -> np.ndarray:
    """Per-note values ``[n_notes]`` as a frame curve ``[F]``: each note's value from its first frame until
    the next note's (the release carries the note's value); before the first note, the first note's."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    F = frames.n_frames
    if values.size == 0:
        return np.zeros(F)
    present = np.flatnonzero(frames.note_end > frames.note_start)
    if present.size == 0:
        return np.zeros(F)
    idx = np.full(F, -1, dtype=np.int64)
    idx[frames.note_start[present]] = present
    idx = np.maximum.accumulate(idx)
    idx = np.where(idx < 0, present[0], idx)
    return values[idx]


def frame_gain_db(requested_db, delivered_db_per_note, frames: NoteFrames, smooth_s: float = GAIN_SMOOTH_S
                  ) -> np.ndarray:
    """The frame-level gain (dB, float64 ``[F]``) that completes a requested gain curve.

    ``requested_db [F]`` minus what the generator delivered through the per-note volume controls
    (``delivered_db_per_note [n_notes]``, held through each note's release by :func:`hold_per_note`),
    smoothed by a moving average of ``smooth_s`` seconds.
    """
    h = np.asarray(requested_db, dtype=np.float64) - hold_per_note(delivered_db_per_note, frames)
    return moving_average(h, int(round(smooth_s * frames.frame_rate)))


def moving_average(x, n: int) -> np.ndarray:
    """Centred moving average over ``n`` frames (edges use the available frames): float64, same length."""
    x = np.asarray(x, dtype=np.float64)
    if n <= 1 or x.size == 0:
        return x.copy()
    k = np.ones(n)
    num = np.convolve(x, k, mode="same")
    den = np.convolve(np.ones_like(x), k, mode="same")
    return num / den


# ---------------------------------------------------------------------------------------------- vibrato
def vibrato_from_modulation(vibrato, m) -> np.ndarray:
    """The vibrato control for modulation ``m = CC1 / 127`` (0..1), given the model's choice ``vibrato``:
    0 at ``m = 0``, unchanged at 0.5, the corpus maximum (``max(vibrato, 1)``) at 1, linear in between.
    Broadcasts."""
    v = np.asarray(vibrato, dtype=np.float64)
    m = np.clip(np.asarray(m, dtype=np.float64), 0.0, 1.0)
    top = np.maximum(v, 1.0)
    return np.where(m <= 0.5, 2.0 * m * v, v + (top - v) * (2.0 * m - 1.0))


def steer_vibrato(vibrato, cc1, frames: NoteFrames) -> tuple[np.ndarray, np.ndarray]:
    """Per-note vibrato controls and the within-note vibrato scale from a CC1 curve.

    Args:
        vibrato: ``[n_notes]`` the expression model's vibrato controls.
        cc1: ``[F]`` CC1 values 0..127.
    Returns:
        (vibrato' ``[n_notes]`` from each note's highest CC1, scale ``[F]``: the vibrato wanted at each frame
        relative to the note's vibrato', 1 on rests and where the note has no vibrato).
    """
    v = np.asarray(vibrato, dtype=np.float64)
    m = np.asarray(cc1, dtype=np.float64) / 127.0
    m_max = note_max(m, frames)
    v_new = np.where(np.isfinite(m_max), vibrato_from_modulation(v, np.nan_to_num(m_max)), v)
    scale = np.ones(frames.n_frames)
    on = frames.note_index >= 0
    if v.size and on.any():
        k = frames.note_index[on]
        want = vibrato_from_modulation(v[k], m[on])
        base = v_new[k]
        scale[on] = np.where(base > 1e-6, want / np.maximum(base, 1e-6), 1.0)
    return v_new, scale


def rescale_vibrato(deviation, scale, frames: NoteFrames, trend_s: float = VIBRATO_TREND_S) -> np.ndarray:
    """Scale the vibrato in a pitch-deviation curve (semitones from the note, ``[F]``) by ``scale [F]``.

    Inside each note the deviation is split into a trend (Hann-smoothed over ``trend_s`` seconds, within the
    note only: intonation, glides) and the rest (vibrato); the rest is multiplied by ``scale``. Notes whose
    scale is 1 throughout, and rests, are returned unchanged.
    """
    return rescale_vibrato_in(deviation, scale, frames.note_start, frames.note_end, frames.frame_rate, trend_s)


def rescale_vibrato_in(deviation, scale, starts, ends, frame_rate: float, trend_s: float = VIBRATO_TREND_S
                       ) -> np.ndarray:
    """:func:`rescale_vibrato` for the note spans ``[starts, ends)`` (frame indices into ``deviation``)."""
    d = np.asarray(deviation, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    out = d.copy()
    n_win = max(3, int(round(trend_s * frame_rate)) | 1)
    starts, ends = np.asarray(starts), np.asarray(ends)
    for k in np.flatnonzero(ends > starts):  # loop over notes
        a, b = starts[k], ends[k]
        if np.all(s[a:b] == 1.0):
            continue
        seg = d[a:b]
        m = min(n_win, (b - a) - (1 - (b - a) % 2))  # odd, at most the note: "same" keeps the note's length
        win = np.hanning(m + 2)[1:-1]
        trend = np.convolve(seg, win, mode="same") / np.convolve(np.ones_like(seg), win, mode="same")
        out[a:b] = trend + s[a:b] * (seg - trend)
    return out


# ------------------------------------------------------------------------------------------------ pitch
def held_pitch(frames: NoteFrames, default: float = 60.0) -> np.ndarray:
    """float64 ``[F]``: each frame's note pitch (MIDI); rests hold the previous note's pitch, leading rests
    the first note's (the generator's convention)."""
    on = frames.note_index >= 0
    if not on.any():
        return np.full(frames.n_frames, float(default))
    last = np.maximum.accumulate(np.where(on, np.arange(on.size), -1))
    last = np.where(last < 0, np.flatnonzero(on)[0], last)
    return frames.pitch[last].astype(np.float64)


def hz_to_semitones(f0_hz) -> np.ndarray:
    """Hz -> MIDI pitch (float64; 0 Hz gives -inf)."""
    with np.errstate(divide="ignore"):
        return 69.0 + 12.0 * np.log2(np.asarray(f0_hz, dtype=np.float64) / 440.0)


def semitones_to_hz(pitch) -> np.ndarray:
    """MIDI pitch -> Hz (float64)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def steer_f0(f0_hz, frames: NoteFrames, bend_semitones=None, vibrato_scale=None) -> np.ndarray:
    """The generator's f0 with pitch bend added and its vibrato rescaled: float32 ``[F]`` Hz.

    Args:
        f0_hz: ``[F]`` the sampled f0 (Hz, > 0).
        bend_semitones: ``[F]`` pitch bend (None: none).
        vibrato_scale: ``[F]`` from :func:`steer_vibrato` (None: unchanged).
    """
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    held = held_pitch(frames)
    dev = hz_to_semitones(np.maximum(f0, 1e-3)) - held
    if vibrato_scale is not None:
        dev = rescale_vibrato(dev, vibrato_scale, frames)
    if bend_semitones is not None:
        dev = dev + np.asarray(bend_semitones, dtype=np.float64).reshape(-1)
    return semitones_to_hz(held + dev).astype(np.float32)


__all__ = ["sustained_offsets", "pedal_held_offsets", "apply_sustain", "expression_gain_db", "note_means", "note_max", "steer_volume",
           "hold_per_note", "frame_gain_db", "moving_average", "vibrato_from_modulation", "steer_vibrato",
           "rescale_vibrato", "rescale_vibrato_in", "held_pitch", "hz_to_semitones", "semitones_to_hz", "steer_f0", "MIN_GAIN_DB"]
