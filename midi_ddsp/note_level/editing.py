"""Per-note edits of a :class:`~midi_ddsp.note_level.notes.Performance` (one note, a selection or all).

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

from midi_ddsp.note_level.notes import Note, Performance, control_index


def select_notes(performance: Performance, notes=None) -> np.ndarray:
    """Boolean mask ``[n_notes]`` for a selection.

    Args:
        notes: ``None`` (all notes), an ``int`` index (negative counts from the end), a ``slice``, a sequence
            of indices, a boolean mask of length ``n_notes``, or a predicate ``Note -> bool``.

    Raises:
        IndexError: an index outside the performance; ValueError: a mask of the wrong length.
    """
    n = len(performance)
    if notes is None:
        return np.ones(n, dtype=bool)
    if callable(notes):
        return np.array([bool(notes(note)) for note in performance.notes], dtype=bool)
    mask = np.zeros(n, dtype=bool)
    if isinstance(notes, slice):
        mask[notes] = True
        return mask
    arr = np.asarray(notes)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"note mask has shape {list(arr.shape)}, expected [{n}]")
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"cannot select notes with {notes!r}")
    idx = arr.reshape(-1)
    if np.any((idx < -n) | (idx >= n)):
        raise IndexError(f"note index out of range for a performance of {n} notes: {notes!r}")
    mask[idx] = True
    return mask


def set_control(performance: Performance, name: str, value, notes=None) -> Performance:
    """Set control ``name`` to ``value`` on the selected notes (see :func:`select_notes`).

    ``value`` is a scalar or an array with one value per selected note (in note order).
    """
    mask = select_notes(performance, notes)
    values = np.asarray(value, dtype=np.float64)
    if values.ndim > 0 and values.shape != (int(mask.sum()),):
        raise ValueError(f"got {values.size} values for {int(mask.sum())} selected notes")
    controls = np.array(performance.controls)
    controls[mask, control_index(name)] = values
    return performance.with_controls(controls)


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
