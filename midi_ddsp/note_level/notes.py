"""Typed note-level data: :class:`Note`, :class:`NoteSequence` (one monophonic voice) and
:class:`Performance` (a voice plus six expression controls per note).

All three are immutable; edits return new objects (see :mod:`midi_ddsp.note_level.editing`).
Times are seconds, pitches MIDI note numbers (0..127, 60 = middle C), velocities 1..127.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from midi_ddsp.errors import NoteError
from midi_ddsp.instruments import Instrument, by_name

#: The six per-note expression controls, in the order of every ``[n_notes, 6]`` array.
#: (MIDI-DDSP's own order is volume, vol_fluc, vibrato, brightness, attack, vol_peak_pos.)
CONTROL_NAMES: tuple[str, ...] = ("volume", "vol_fluc", "vol_peak_pos", "vibrato", "brightness", "attack")
N_CONTROLS = len(CONTROL_NAMES)


def control_index(name: str) -> int:
    """Column of control ``name`` in a controls array; raises ``KeyError`` naming the valid controls."""
    try:
        return CONTROL_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown control {name!r}; choose one of: {', '.join(CONTROL_NAMES)}") from None


@dataclass(frozen=True)
class Note:
    """One note.

    Attributes:
        pitch: MIDI note number, integer 0..127.
        onset_s: start time in seconds (>= 0).
        offset_s: end time in seconds (> onset_s).
        velocity: MIDI velocity 1..127.
        instrument: canonical instrument name (aliases such as ``"contrabass"`` are normalised).
            Inside a :class:`NoteSequence` the sequence's instrument is authoritative.
    """

    pitch: int
    onset_s: float
    offset_s: float
    velocity: int = 100
    instrument: str = "violin"

    def __post_init__(self):
        pitch, velocity = _as_int(self.pitch, "pitch"), _as_int(self.velocity, "velocity")
        onset, offset = float(self.onset_s), float(self.offset_s)
        if not 0 <= pitch <= 127:
            raise NoteError(f"note pitch {pitch} is outside the MIDI range 0..127")
        if not 1 <= velocity <= 127:
            raise NoteError(f"note velocity {velocity} is outside 1..127")
        if not (math.isfinite(onset) and math.isfinite(offset)):
            raise NoteError(f"note times must be finite (onset {onset}, offset {offset})")
        if onset < 0:
            raise NoteError(f"note onset {onset} s is negative")
        if offset <= onset:
            raise NoteError(f"note offset {offset} s is not after its onset {onset} s")
        object.__setattr__(self, "pitch", pitch)
        object.__setattr__(self, "velocity", velocity)
        object.__setattr__(self, "onset_s", onset)
        object.__setattr__(self, "offset_s", offset)
        object.__setattr__(self, "instrument", by_name(self.instrument).name)

    @property
    def duration_s(self) -> float:
        return self.offset_s - self.onset_s


def _as_int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise NoteError(f"note {what} must be an integer, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise NoteError(f"note {what} must be an integer, got {value!r}") from None
    if not as_float.is_integer():
        raise NoteError(f"note {what} must be an integer, got {value!r}")
    return int(as_float)


@dataclass(frozen=True)
class NoteSequence:
    """One monophonic voice: notes sorted by onset that do not overlap (an offset may equal the next onset).

    Args:
        notes: the notes, in any order (they are sorted by onset).
        instrument: the voice's instrument; notes are relabelled to it. ``None`` takes the notes' common
            instrument (``"violin"`` for an empty sequence).
        name: a label, e.g. the MIDI track name.

    Raises:
        NoteError: two notes overlap (split polyphony into voices first, e.g. with
            :func:`midi_ddsp.io.midi.split_voices`), or notes disagree on the instrument when none is given.
    """

    notes: tuple[Note, ...]
    instrument: str | None = None
    name: str = ""

    def __post_init__(self):
        notes = tuple(self.notes)
        for n in notes:
            if not isinstance(n, Note):
                raise NoteError(f"NoteSequence holds Note objects, got {type(n).__name__}")
        if self.instrument is None:
            names = {n.instrument for n in notes}
            if len(names) > 1:
                raise NoteError(f"notes have several instruments ({', '.join(sorted(names))}); give one")
            instrument = names.pop() if names else "violin"
        else:
            instrument = by_name(self.instrument).name
        notes = tuple(n if n.instrument == instrument else replace(n, instrument=instrument) for n in notes)
        notes = tuple(sorted(notes, key=lambda n: (n.onset_s, n.offset_s)))
        for i in range(1, len(notes)):
            if notes[i - 1].offset_s > notes[i].onset_s:
                a, b = notes[i - 1], notes[i]
                raise NoteError(
                    f"voice {self.name!r}: note {i - 1} (pitch {a.pitch}, {a.onset_s:.3f}-{a.offset_s:.3f} s) "
                    f"overlaps note {i} (pitch {b.pitch}, from {b.onset_s:.3f} s); a voice is monophonic"
                )
        object.__setattr__(self, "notes", notes)
        object.__setattr__(self, "instrument", instrument)
        object.__setattr__(self, "name", str(self.name))

    def __len__(self) -> int:
        return len(self.notes)

    def __iter__(self) -> Iterator[Note]:
        return iter(self.notes)

    def __getitem__(self, i: int) -> Note:
        return self.notes[i]

    @property
    def pitches(self) -> np.ndarray:
        """[n_notes] int64 MIDI pitches."""
        return np.array([n.pitch for n in self.notes], dtype=np.int64)

    @property
    def onsets_s(self) -> np.ndarray:
        """[n_notes] float64 onsets in seconds."""
        return np.array([n.onset_s for n in self.notes], dtype=np.float64)

    @property
    def offsets_s(self) -> np.ndarray:
        """[n_notes] float64 offsets in seconds."""
        return np.array([n.offset_s for n in self.notes], dtype=np.float64)

    @property
    def velocities(self) -> np.ndarray:
        """[n_notes] int64 velocities."""
        return np.array([n.velocity for n in self.notes], dtype=np.int64)

    @property
    def end_s(self) -> float:
        """Offset of the last note in seconds (0 for an empty sequence)."""
        return self.notes[-1].offset_s if self.notes else 0.0

    @property
    def instrument_info(self) -> Instrument:
        return by_name(self.instrument)

    def out_of_range(self) -> list[int]:
        """Indices of notes outside the instrument's usual range (they still render; the model extrapolates)."""
        inst = self.instrument_info
        return [i for i, n in enumerate(self.notes) if not inst.in_range(n.pitch)]

    def transposed(self, semitones: int) -> "NoteSequence":
        """Every pitch shifted by ``semitones``; raises :class:`NoteError` if one leaves 0..127."""
        return replace(self, notes=tuple(replace(n, pitch=n.pitch + int(semitones)) for n in self.notes))

    def time_scaled(self, speed: float) -> "NoteSequence":
        """Times divided by ``speed`` (2.0 plays twice as fast)."""
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number, got {speed}")
        return replace(
            self, notes=tuple(replace(n, onset_s=n.onset_s / speed, offset_s=n.offset_s / speed) for n in self.notes)
        )


@dataclass(frozen=True, eq=False)
class Performance:
    """A voice and its six expression controls per note, the level users edit.

    Attributes:
        sequence: the notes.
        controls: float64 ``[n_notes, 6]`` in :data:`CONTROL_NAMES` order. Values produced by the models are
            normalised (about [0, 1], see :class:`midi_ddsp.note_level.expression.ControlNormalizer`); any
            finite value is accepted so users may extrapolate. The array is read-only.
    """

    sequence: NoteSequence
    controls: np.ndarray = field(repr=False)

    def __post_init__(self):
        if not isinstance(self.sequence, NoteSequence):
            raise NoteError(f"Performance needs a NoteSequence, got {type(self.sequence).__name__}")
        try:
            controls = np.array(_to_numpy(self.controls), dtype=np.float64)  # always a private copy
        except (TypeError, ValueError) as e:
            raise NoteError(f"controls must be numbers: {e}") from None
        n = len(self.sequence)
        if n == 0 and controls.size == 0:
            controls = controls.reshape(0, N_CONTROLS)
        if controls.shape != (n, N_CONTROLS):
            raise NoteError(
                f"controls must have shape [{n}, {N_CONTROLS}] (notes x controls), got {list(controls.shape)}"
            )
        if not np.all(np.isfinite(controls)):
            bad = np.argwhere(~np.isfinite(controls))[0]
            raise NoteError(f"control {CONTROL_NAMES[bad[1]]} of note {bad[0]} is not finite")
        controls.setflags(write=False)
        object.__setattr__(self, "controls", controls)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Performance)
            and self.sequence == other.sequence
            and np.array_equal(self.controls, other.controls)
        )

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def notes(self) -> tuple[Note, ...]:
        return self.sequence.notes

    @property
    def instrument(self) -> str:
        return self.sequence.instrument

    @property
    def name(self) -> str:
        return self.sequence.name

    def control(self, name: str) -> np.ndarray:
        """[n_notes] values of one control (a copy)."""
        return self.controls[:, control_index(name)].copy()

    def with_controls(self, controls) -> "Performance":
        """The same notes with a whole new ``[n_notes, 6]`` controls array."""
        return Performance(self.sequence, controls)

    def set_control(self, name: str, value, notes=None) -> "Performance":
        """A copy with control ``name`` set to ``value`` on the selected notes.

        ``notes`` selects: ``None`` (all), an index, a slice, a sequence of indices, a boolean mask or a
        predicate ``Note -> bool``. ``value`` is a scalar or one value per selected note.
        See :func:`midi_ddsp.note_level.editing.set_control`.
        """
        return set_control(self, name, value, notes)


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


def _to_numpy(x):
    if hasattr(x, "detach"):  # torch tensor
        return x.detach().cpu().numpy()
    return x


__all__ = ["CONTROL_NAMES", "N_CONTROLS", "control_index", "Note", "NoteSequence", "Performance", "select_notes",
           "set_control"]
