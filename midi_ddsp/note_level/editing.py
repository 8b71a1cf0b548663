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

from typing import Callable

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


__all__ = ["select_notes", "set_control", "scale_control", "map_control"]
