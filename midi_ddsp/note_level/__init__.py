"""The note level: notes, note <-> frame layout, the six expression controls, editing and text forms.

Reads and writes no files (performance files: :mod:`midi_ddsp.io.performance_files`).

No neural networks here except the thin Lightning wrapper in :mod:`.extraction_module` (not imported by
default, so this package loads without Lightning).
"""
from midi_ddsp.note_level.editing import keep_controls, map_control, scale_control, select_notes, set_control
from midi_ddsp.note_level.expression import ControlNormalizer, extract_controls
from midi_ddsp.note_level.frames import NoteFrames, expand_to_frames, frames_to_notes, notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES, N_CONTROLS, Note, NoteSequence, Performance, control_index
from midi_ddsp.note_level.serialization import (
    from_csv,
    from_json,
    to_csv,
    to_json,
)

__all__ = [
    "CONTROL_NAMES", "N_CONTROLS", "Note", "NoteSequence", "Performance", "control_index",
    "NoteFrames", "notes_to_frames", "frames_to_notes", "expand_to_frames",
    "extract_controls", "ControlNormalizer",
    "select_notes", "set_control", "scale_control", "map_control", "keep_controls",
    "to_csv", "from_csv", "to_json", "from_json",
]
