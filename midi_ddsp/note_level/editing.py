"""Per-note edits of a :class:`~midi_ddsp.note_level.notes.Performance` (one note, a selection or all).

``select_notes`` and ``set_control`` live in :mod:`~midi_ddsp.note_level.notes` (``Performance.set_control``
uses them) and are re-exported here with the other edits.

Every function returns a new Performance; the input is never modified.

Example::

    perf = perf.set_control("vibrato", 0.9, notes=3)                      # one note
    perf = perf.set_control("volume", 0.2, notes=slice(0, 8))             # a range
    perf = perf.set_control("brightness", 1.0, notes=lambda n: n.pitch > 72)
    perf = scale_control(perf, "vol_fluc", 0.5)                            # all notes
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from midi_ddsp.note_level.notes import Note, Performance, control_index, select_notes, set_control


def scale_control(performance: Performance, name: str, factor: float, notes=None) -> Performance:
    """Multiply control ``name`` by ``factor`` on the selected notes."""
    mask = select_notes(performance, notes)
    controls = np.array(performance.controls)
    controls[mask, control_index(name)] *= float(factor)
    return performance.with_controls(controls)


def map_control(performance: Performance, name: str, fn: Callable[[Note, float], float], notes=None) -> Performance:
    """Replace control ``name`` by ``fn(note, old_value)`` on the selected notes."""
    mask = select_notes(performance, notes)
    controls = np.array(performance.controls)
    col = control_index(name)
    for i in np.flatnonzero(mask):  # per-note loop: edits are small and user-driven
        controls[i, col] = float(fn(performance.notes[i], float(controls[i, col])))
    return performance.with_controls(controls)


def _note_keys(performance: Performance, resolution_s: float) -> list[tuple]:
    inst = performance.instrument
    return [(inst, n.pitch, n.velocity, round(n.onset_s / resolution_s), round(n.offset_s / resolution_s))
            for n in performance.notes]


def keep_controls(performances: Sequence[Performance], previous: Sequence[Performance],
                  resolution_s: float = 1e-3) -> tuple[list[Performance], int]:
    """Give every note that also stands in ``previous`` its controls there.

    A note matches a previous note of the same instrument, pitch and velocity whose onset and offset round
    to the same ``resolution_s`` (seconds); notes of the same voice index are preferred, then any voice. So
    re-rendering an edited MIDI file with the performance exported from the first render
    (``keep=previous``) changes the controls of the edited notes only.

    Returns:
        (the performances with the kept controls, the number of notes that kept theirs).
    """
    pool: dict[tuple, np.ndarray] = {}  # any voice's: the first note with that key
    for prev in previous:
        for key, c in zip(_note_keys(prev, resolution_s), prev.controls):
            pool.setdefault(key, c)
    out, kept = [], 0
    for v, perf in enumerate(performances):
        own = dict(zip(_note_keys(previous[v], resolution_s), previous[v].controls)) if v < len(previous) else {}
        controls = np.array(perf.controls)
        for i, key in enumerate(_note_keys(perf, resolution_s)):  # per note: a dictionary lookup
            found = own.get(key, pool.get(key))
            if found is not None:
                controls[i], kept = found, kept + 1
        out.append(perf.with_controls(controls))
    return out, kept


def kept_report(kept: int, total: int) -> list[str]:
    """The line to tell a user after :func:`keep_controls` kept ``kept`` of ``total`` notes' controls."""
    if kept == 0 and total:
        return ["no note matches the earlier performance (same instrument, pitch, velocity and times within 1 ms): "
                "every note was performed anew"]
    if kept < total:
        return [f"{total - kept} of {total} notes performed anew; the others keep their controls from the earlier "
                f"performance"]
    return []


__all__ = ["select_notes", "set_control", "scale_control", "map_control", "keep_controls", "kept_report"]
