"""Errors and warnings that users see.

Every error the package raises on bad *input* derives from :class:`MidiDDSPError` and carries a one-line,
user-facing message that names the problem (and the file, where there is one). The CLI prints
``str(error)`` on stderr and exits with code 2; Python callers can ``except MidiDDSPError``.

Hierarchy::

    MidiDDSPError
      MidiReadError         a MIDI file cannot be used (``reason``: missing, not_midi, corrupt, empty, drums_only)
      PerformanceFileError  a performance CSV/JSON file is malformed
      NoteError             an invalid note or note sequence (bad pitch, negative duration, overlap)
      OutputWriteError      an output path cannot be written
      UnknownInstrumentError  an unknown instrument name (also importable from :mod:`midi_ddsp.instruments`)
      CheckpointError       a model file is missing, corrupt or does not match the code (also in
                            :mod:`midi_ddsp.checkpoint`)

Warnings (out-of-range notes, skipped drum tracks, programs mapped to a stand-in instrument) use the
:class:`MidiDDSPWarning` category so callers can filter or collect them.
"""
from __future__ import annotations


class MidiDDSPError(Exception):
    """Base class of all user-facing errors; ``str(e)`` is a single line."""

    def __init__(self, message: str):
        # Keep messages on one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))


class MidiReadError(MidiDDSPError, ValueError):
    """A MIDI file cannot be read or holds nothing to render.

    Attributes:
        path: the file.
        reason: one of ``"missing"``, ``"not_midi"``, ``"corrupt"``, ``"empty"``, ``"drums_only"``.
    """

    REASONS = ("missing", "not_midi", "corrupt", "empty", "drums_only")

    def __init__(self, path, reason: str, detail: str):
        if reason not in self.REASONS:
            raise ValueError(f"unknown MidiReadError reason {reason!r}")
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {detail}")


class PerformanceFileError(MidiDDSPError, ValueError):
    """A performance file (CSV or JSON) is malformed; the message names the file, line and column."""


class NoteError(MidiDDSPError, ValueError):
    """An invalid note or note sequence (pitch outside 0..127, offset not after onset, overlap...)."""


class OutputWriteError(MidiDDSPError, OSError):
    """An output file cannot be written (missing folder, no permission...)."""


class UnknownInstrumentError(MidiDDSPError, ValueError):
    """An instrument name (or id) that is not in the instrument table."""


class CheckpointError(MidiDDSPError):
    """A model file is missing, corrupt, of the wrong kind or does not match this code."""


class MidiDDSPWarning(UserWarning):
    """Category of the non-fatal problems reported while reading input (out-of-range notes, ...)."""


__all__ = [
    "MidiDDSPError",
    "MidiReadError",
    "PerformanceFileError",
    "NoteError",
    "OutputWriteError",
    "MidiDDSPWarning",
    "UnknownInstrumentError",
    "CheckpointError",
]
