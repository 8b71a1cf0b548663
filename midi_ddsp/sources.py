"""What can be rendered, read into voices before any model is loaded (so bad input fails fast).

A source is a MIDI path, a performance file (``.csv`` / ``.json``), Performance(s) (rendered as given) or
NoteSequence(s) (performed by the expression model). :func:`read_source` turns any of them into a
:class:`Source`: the voices, their performances where the source gives them, and the warnings worth telling
the user (one line each: out-of-range notes, skipped drum tracks, stand-in instruments...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import limits
from .errors import MidiDDSPError
from .instruments import by_name
from .io.midi import load_midi, note_name
from .io.performance_files import load_performances
from .note_level.notes import NoteSequence, Performance

SHORT_NOTE_FRAMES = 1  # notes shorter than this many frames may vanish from the frame grid: warned
WEAK_NOTE_S = 0.04  # notes shorter than this come out quieter (the models' attack is about this long): warned
SILENT_FRACTION = 0.9  # of the Nyquist frequency: harmonics above it are faded out (nyquist_gain's fade_start)
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
    limits.check_speed(speed)


def adjust_sequence(seq: NoteSequence, instrument, pitch_offset, speed) -> NoteSequence:
    if pitch_offset and len(seq):
        lo, hi = int(np.min(seq.pitches)), int(np.max(seq.pitches))
        if not (0 <= lo + int(pitch_offset) and hi + int(pitch_offset) <= 127):
            raise MidiDDSPError(f"{seq.name or seq.instrument}: --pitch-offset {int(pitch_offset):+d} takes notes "
                                f"outside MIDI 0..127 (its pitches are {lo}..{hi}; offsets from {-lo:+d} to "
                                f"{127 - hi:+d} keep them all)")
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


def short_note_warnings(voices: Sequence[NoteSequence], frame_rate: float, sample_rate: float | None = None
                        ) -> list[str]:
    """Notes that will not sound as asked, one line per voice and kind: shorter than a frame (may vanish),
    shorter than ``WEAK_NOTE_S`` (quieter: measured with the shipped model, a 20 ms note peaks about 8 dB
    and a 4 ms note about 30 dB below a long one), and, given ``sample_rate``, pitched so high that even the
    fundamental is above ``SILENT_FRACTION`` of the Nyquist frequency (silent)."""
    out = []
    for v in voices:
        label = v.name or v.instrument
        d = v.offsets_s - v.onsets_s if len(v) else np.zeros(0)
        gone = np.flatnonzero(d * frame_rate < SHORT_NOTE_FRAMES)
        weak = np.setdiff1d(np.flatnonzero(d < WEAK_NOTE_S), gone)
        for idx, what in ((gone, f"shorter than {1000 * SHORT_NOTE_FRAMES / frame_rate:.0f} ms may not sound at all"),
                          (weak, f"shorter than {1000 * WEAK_NOTE_S:.0f} ms come out quieter than longer notes "
                                 f"(about 8 dB at 20 ms)")):
            if idx.size:
                shown = ", ".join(f"{note_name(v[i].pitch)} at {v[i].onset_s:.3f} s" for i in idx[:5])
                more = f" and {idx.size - 5} more" if idx.size > 5 else ""
                out.append(f"{label}: {idx.size} note{'s' if idx.size > 1 else ''} {what}: {shown}{more}")
        if sample_rate and len(v):
            limit = SILENT_FRACTION * sample_rate / 2
            hz = 440.0 * 2.0 ** ((np.asarray(v.pitches, np.float64) - 69.0) / 12.0)
            high = np.flatnonzero(hz >= limit)
            if high.size:
                shown = ", ".join(f"{note_name(v[i].pitch)} ({v[i].pitch}) at {v[i].onset_s:.2f} s" for i in high[:5])
                more = f" and {high.size - 5} more" if high.size > 5 else ""
                out.append(f"{label}: {high.size} note{'s' if high.size > 1 else ''} will be silent: "
                           f"{'their' if high.size > 1 else 'its'} fundamental is above {limit / 1000:.1f} kHz, "
                           f"more than {sample_rate} Hz audio can carry ({shown}{more}; transpose down with "
                           f"--pitch-offset)")
    return out


def read_midi_voices(path, instrument: str | None = None, pitch_offset: int = 0, speed: float = 1.0,
                     program_map: dict[int, str] | None = None, pedal=None) -> ReadResult:
    """MIDI file -> monophonic voices and the reader's warnings (see :func:`midi_ddsp.io.midi.load_midi`,
    also for ``pedal``)."""
    if instrument is not None:
        by_name(instrument)
    check_speed(speed)
    result = load_midi(path, instrument, program_map, int(pitch_offset), float(speed), pedal=pedal)
    limits.check_voices(result.sequences)
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
    messages: list[str] = []
    if all(isinstance(x, Performance) for x in items):
        perfs = [adjust_performance(p, instrument, pitch_offset, speed) for p in items]
        perfs, messages = limits.clamp_controls(perfs)
        voices = [p.sequence for p in perfs]
    elif all(isinstance(x, NoteSequence) for x in items):
        perfs, voices = None, [adjust_sequence(s, instrument, pitch_offset, speed) for s in items]
    else:
        raise TypeError("render takes a path, Performances or NoteSequences")
    limits.check_voices(voices)
    return Source(voices, perfs, messages + range_warnings(voices))


__all__ = ["Source", "ReadResult", "read_source", "read_midi_voices", "range_warnings", "short_note_warnings",
           "check_speed", "adjust_sequence", "adjust_performance"]
