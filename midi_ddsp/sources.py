"""What can be rendered, read into voices before any model is loaded (so bad input fails fast).

A source is a MIDI path, a performance file (``.csv`` / ``.json``), Performance(s) (rendered as given) or
NoteSequence(s) (performed by the expression model). :func:`read_source` turns any of them into a
:class:`Source`: the voices, their performances where the source gives them, and the warnings worth telling
the user (one line each: out-of-range notes, skipped drum tracks, stand-in instruments...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MidiDDSPError
from .instruments import by_name
from .io.midi import load_midi, note_name
from .io.performance_files import load_performances
from .note_level.notes import NoteSequence, Performance

SHORT_NOTE_FRAMES = 1  # notes shorter than this many frames may vanish from the frame grid: warned
PERFORMANCE_SUFFIXES = (".csv", ".json")


@dataclass
class ReadResult:
    """Voices read from a MIDI file and the problems worth telling the user (one line each)."""

    voices: list[NoteSequence]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Source:
    """A source read into voices. ``performances`` is None when the expression model has to perform them."""

    voices: list[NoteSequence]
    performances: list[Performance] | None = None
    warnings: list[str] = field(default_factory=list)


def check_speed(speed: float) -> None:
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise MidiDDSPError(f"speed must be a positive number, got {speed}")


def adjust_sequence(seq: NoteSequence, instrument, pitch_offset, speed) -> NoteSequence:
    if instrument is not None:
        seq = NoteSequence(seq.notes, by_name(instrument).name, seq.name)
    if pitch_offset:
        seq = seq.transposed(int(pitch_offset))
    if speed != 1.0:
        seq = seq.time_scaled(float(speed))
    return seq


def adjust_performance(perf: Performance, instrument, pitch_offset, speed) -> Performance:
    if instrument is None and not pitch_offset and speed == 1.0:
        return perf
    return Performance(adjust_sequence(perf.sequence, instrument, pitch_offset, speed), perf.controls)


def range_warnings(voices: Sequence[NoteSequence]) -> list[str]:
    out = []
    for v in voices:
        bad = v.out_of_range()
        if bad:
            inst = v.instrument_info
            shown = ", ".join(f"{note_name(v[i].pitch)} ({v[i].pitch}) at {v[i].onset_s:.2f} s" for i in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            out.append(f"{v.name or 'voice'} ({inst.name}): {len(bad)} note{'s' if len(bad) > 1 else ''} outside "
                       f"the usual range {note_name(inst.low)}-{note_name(inst.high)} ({inst.low}-{inst.high}): "
                       f"{shown}{more}; rendered anyway (the model extrapolates)")
    return out


def short_note_warnings(voices: Sequence[NoteSequence], frame_rate: float) -> list[str]:
    out = []
    for v in voices:
        d = v.offsets_s - v.onsets_s if len(v) else np.zeros(0)
        bad = np.flatnonzero(d * frame_rate < SHORT_NOTE_FRAMES)
        if bad.size:
            shown = ", ".join(f"{note_name(v[i].pitch)} at {v[i].onset_s:.3f} s" for i in bad[:5])
            out.append(f"{v.name or v.instrument}: {bad.size} note{'s' if bad.size > 1 else ''} shorter than "
                       f"{1000 * SHORT_NOTE_FRAMES / frame_rate:.0f} ms may not sound: {shown}")
    return out


def read_midi_voices(path, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
                     program_map: dict[int, str] | None = None) -> ReadResult:
    """MIDI file -> monophonic voices and the reader's warnings (see :func:`midi_ddsp.io.midi.load_midi`)."""
    if instrument is not None:
        by_name(instrument)
    check_speed(speed)
    result = load_midi(path, instrument, program_map, int(pitch_offset), float(speed))
    return ReadResult(list(result.sequences), list(result.warnings))


def read_source(source, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0) -> Source:
    """Any source (see the module docstring) -> :class:`Source`, with ``instrument``, ``pitch_offset``
    (semitones) and ``speed`` (tempo factor) applied to every voice. A :class:`Source` is returned as is.

    Raises:
        MidiReadError, PerformanceFileError, UnknownInstrumentError, MidiDDSPError: unusable input.
    """
    if isinstance(source, Source):
        return source
    if instrument is not None:
        instrument = by_name(instrument).name
    check_speed(speed)
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in PERFORMANCE_SUFFIXES:
        source = load_performances(source)
    if isinstance(source, (str, Path)):
        read = read_midi_voices(source, instrument, pitch_offset, speed)
        return Source(read.voices, None, read.warnings)
    items = [source] if isinstance(source, (Performance, NoteSequence)) else list(source)
    if not items:
        raise MidiDDSPError("nothing to render (no voices)")
    if all(isinstance(x, Performance) for x in items):
        perfs = [adjust_performance(p, instrument, pitch_offset, speed) for p in items]
        voices = [p.sequence for p in perfs]
    elif all(isinstance(x, NoteSequence) for x in items):
        perfs, voices = None, [adjust_sequence(s, instrument, pitch_offset, speed) for s in items]
    else:
        raise TypeError("render takes a path, Performances or NoteSequences")
    return Source(voices, perfs, range_warnings(voices))


__all__ = ["Source", "ReadResult", "read_source", "read_midi_voices", "range_warnings", "short_note_warnings",
           "check_speed", "adjust_sequence", "adjust_performance"]
