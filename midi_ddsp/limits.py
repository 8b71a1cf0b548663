"""Limits on what a render or a transfer may ask for, checked before anything large is allocated.

Every limit raises :class:`~midi_ddsp.errors.MidiDDSPError` with one line that names the value, the limit
and what to do; the CLI prints it and exits with code 2. The sizes keep a render's working set to a few GB:
its output rows are one float32 row per voice (``duration x sample rate x 4`` bytes each, 690 MB per voice
for an hour at 48 kHz) plus about one 15 s processing window.

========================  =================================================================
total duration            last note offset <= ``MAX_DURATION_S`` (1 hour), and duration x voices
                          <= ``MAX_VOICE_SECONDS`` (4 voice-hours)
one note                  <= ``MAX_NOTE_S`` (10 minutes)
notes, voices             <= ``MAX_NOTES`` (100 000) in all, <= ``MAX_VOICES`` (128)
--speed                   ``MIN_SPEED`` .. ``MAX_SPEED`` (0.01 .. 100)
--temperature             0 .. ``MAX_TEMPERATURE`` (5; above 2 the pitch curves are mostly noise)
--seed                    any integer (hashed, see :func:`midi_ddsp.generation.derive_seed`)
controls in a CSV/JSON    0 .. 1; values outside are clamped with a warning (a control is a position in
                          the instrument's range, outside it the models extrapolate badly)
transfer input            ``MIN_TRANSFER_S`` (0.1 s) .. ``MAX_DURATION_S``
========================  =================================================================
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import MidiDDSPError

MAX_DURATION_S = 3600.0
MAX_VOICE_SECONDS = 4 * 3600.0
MAX_NOTE_S = 600.0
MAX_NOTES = 100_000
MAX_VOICES = 128
MIN_SPEED, MAX_SPEED = 0.01, 100.0
MAX_TEMPERATURE = 5.0
MIN_TRANSFER_S = 0.1


def _num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def check_speed(speed, name: str = "speed") -> float:
    """``speed`` as a float, or MidiDDSPError when it is not a number in ``MIN_SPEED .. MAX_SPEED``."""
    if not (_num(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise MidiDDSPError(f"{name} must be between {MIN_SPEED:g} and {MAX_SPEED:g} (a tempo factor), got {speed}")
    return float(speed)


def check_temperature(temperature, name: str = "temperature") -> float:
    """``temperature`` as a float, or MidiDDSPError outside ``0 .. MAX_TEMPERATURE``."""
    if not (_num(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise MidiDDSPError(f"{name} must be between 0 and {MAX_TEMPERATURE:g} (1 = as trained, 0 = the most "
                            f"likely performance), got {temperature}")
    return float(temperature)


def check_voices(voices: Sequence) -> None:
    """Voice count, note count, note lengths and total duration of ``NoteSequence`` voices (see the table)."""
    if len(voices) > MAX_VOICES:
        raise MidiDDSPError(f"{len(voices)} voices; at most {MAX_VOICES} can be rendered at once "
                            f"(render the tracks in groups and mix the results)")
    n_notes = sum(len(v) for v in voices)
    if n_notes > MAX_NOTES:
        raise MidiDDSPError(f"{n_notes} notes; at most {MAX_NOTES} can be rendered at once (split the piece)")
    end, longest, where = 0.0, 0.0, None
    for v in voices:
        if not len(v):
            continue
        on, off = np.asarray(v.onsets_s, np.float64), np.asarray(v.offsets_s, np.float64)
        if not (np.all(np.isfinite(on)) and np.all(np.isfinite(off))):
            raise MidiDDSPError(f"{v.name or v.instrument}: a note time is not a finite number")
        end = max(end, float(off.max()))
        k = int(np.argmax(off - on))
        if off[k] - on[k] > longest:
            longest, where = float(off[k] - on[k]), (v, k)
    if longest > MAX_NOTE_S:
        v, k = where
        raise MidiDDSPError(f"{v.name or v.instrument}: the note at {v[k].onset_s:.2f} s lasts {longest:.0f} s; "
                            f"notes may last at most {MAX_NOTE_S:.0f} s (check its offset, or --speed)")
    if end > MAX_DURATION_S:
        raise MidiDDSPError(f"the piece lasts {end:.0f} s; at most {MAX_DURATION_S:.0f} s can be rendered at once "
                            f"(check the last note's offset, or --speed; or split the piece)")
    sounding = sum(1 for v in voices if len(v))
    if end * sounding > MAX_VOICE_SECONDS:
        raise MidiDDSPError(f"{sounding} voices x {end:.0f} s is more than {MAX_VOICE_SECONDS / 3600:.0f} "
                            f"voice-hours (the output holds one row per voice): render fewer voices at a time")


def clamp_controls(performances: Sequence) -> tuple[list, list[str]]:
    """Performances with controls clamped to 0..1, and one warning line per voice that had values outside."""
    from .note_level.notes import CONTROL_NAMES, Performance

    out, messages = [], []
    for p in performances:
        c = np.asarray(p.controls, dtype=np.float64)
        bad = (c < 0) | (c > 1)
        if bad.any():
            cols = [CONTROL_NAMES[j] for j in np.flatnonzero(bad.any(0))]
            lo, hi = float(np.nanmin(c)), float(np.nanmax(c))
            messages.append(f"{p.sequence.name or p.instrument}: {int(bad.sum())} control value"
                            f"{'s' if bad.sum() > 1 else ''} outside 0..1 ({', '.join(cols)}; from {lo:g} to "
                            f"{hi:g}) clamped to 0..1")
            p = Performance(p.sequence, np.clip(c, 0.0, 1.0))
        out.append(p)
    return out, messages


def check_transfer_input(n_samples: int, sample_rate: int) -> None:
    """A recording for timbre transfer: at least ``MIN_TRANSFER_S``, at most ``MAX_DURATION_S``."""
    seconds = n_samples / float(sample_rate)
    if seconds < MIN_TRANSFER_S:
        raise MidiDDSPError(f"the recording lasts {1000 * seconds:.1f} ms; timbre transfer needs at least "
                            f"{1000 * MIN_TRANSFER_S:.0f} ms of audio")
    if seconds > MAX_DURATION_S:
        raise MidiDDSPError(f"the recording lasts {seconds:.0f} s; at most {MAX_DURATION_S:.0f} s can be "
                            f"transferred at once (split it)")


__all__ = ["check_speed", "check_temperature", "check_voices", "clamp_controls", "check_transfer_input",
           "MAX_DURATION_S", "MAX_VOICE_SECONDS", "MAX_NOTE_S", "MAX_NOTES", "MAX_VOICES", "MIN_SPEED",
           "MAX_SPEED", "MAX_TEMPERATURE", "MIN_TRANSFER_S"]
