"""midi-ddsp: MIDI to instrument audio with note-level expression control."""
