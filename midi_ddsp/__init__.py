"""midi-ddsp: MIDI to realistic instrument audio with note-by-note expression control.

Public API (imported lazily, so ``import midi_ddsp`` stays light)::

    MidiDDSP                                  the full pipeline (midi_ddsp.pipeline)
    Note, NoteSequence, Performance           the note level (midi_ddsp.note_level.notes)
    CONTROL_NAMES                             the six per-note expression controls
    SynthParams                               frame-level synthesis parameters (midi_ddsp.synthesis.params)
    read_midi                                 MIDI -> monophonic voices (midi_ddsp.io.midi)
    INSTRUMENTS                               the instrument table (midi_ddsp.instruments)
    MidiDDSPError                             base class of every user-facing error
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "MidiDDSP": "midi_ddsp.pipeline",
    "Note": "midi_ddsp.note_level.notes",
    "NoteSequence": "midi_ddsp.note_level.notes",
    "Performance": "midi_ddsp.note_level.notes",
    "CONTROL_NAMES": "midi_ddsp.note_level.notes",
    "SynthParams": "midi_ddsp.synthesis.params",
    "read_midi": "midi_ddsp.io.midi",
    "INSTRUMENTS": "midi_ddsp.instruments",
    "MidiDDSPError": "midi_ddsp.errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'midi_ddsp' has no attribute {name!r}")
