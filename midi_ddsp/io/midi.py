"""MIDI files <-> monophonic :class:`~midi_ddsp.note_level.notes.NoteSequence` voices.

Reading (:func:`read_midi`, :func:`load_midi`):

1. **Checks** give one-line :class:`~midi_ddsp.errors.MidiReadError` s: missing file, not a MIDI file (no
   ``MThd`` header), corrupt or truncated (chunk lengths that run past the end of the file, or anything
   the parser rejects), empty (no notes) and drum-only files.
2. **Tracks**: every pretty_midi instrument (a track/channel/program combination) with notes. Drum tracks
   are skipped with a warning. Zero-length notes are dropped, and exact duplicates (same pitch, same onset)
   are merged, with a warning.
3. **Sustain** (only when the caller passes the tracks' pedal intervals, as the controller-following render
   does): on a track of a chordal program (one chosen by pitch in the table below: pianos, organs, guitars,
   ensembles, brass sections) a note released while the pedal is down is held to the pedal's release or
   until the same key is struck again, before the split; the held notes overlap later ones and so take
   voices of their own.
4. **Voices** (:func:`split_voices`): a polyphonic track becomes several monophonic voices. Notes are
   taken in onset order; notes with the same onset form a chord. A voice is *free* for a chord when its last
   note has ended, or overlaps the chord by at most ``legato_tolerance_s`` (50 ms) *and* less than half its
   length (legato playing: that note is shortened to end where the new one starts). The chord's notes, top
   down, are matched to the free voices ordered by their last pitch, top down, without crossing: as many
   notes as possible continue a free voice, with the least total pitch movement (a small dynamic program;
   for a single note this is simply the free voice with the nearest last pitch). Notes left over open new
   voices. Voices are returned top to bottom (by mean pitch). MIDI-DDSP instead chains overlapping notes
   into one line, which drifts in time.
5. **Instruments**: the caller's ``instrument_override`` (all voices), else ``program_map[program]``, else
   :data:`PROGRAM_TABLE` (0-based General-MIDI programs):

   ==============================================  =================================================
   programs                                        instrument
   ==============================================  =================================================
   40, 41, 42, 43                                  violin, viola, cello, double bass (exact)
   73, 68, 71, 66, 70                              flute, oboe, clarinet, saxophone, bassoon (exact)
   56, 60, 57, 58                                  trumpet, horn, trombone, tuba (exact)
   59 (muted trumpet)                              trumpet
   64, 65, 67 (soprano, alto, baritone sax)        saxophone
   69 (English horn), 109 (bagpipe), 111 (shanai)  oboe
   72, 74-79 (piccolo, recorder, pipes...)         flute
   110 (fiddle)                                    violin
   61-63 (brass section, synth brass)              brass by pitch: trumpet, horn, trombone or tuba
   everything else (pianos, organs, guitars,       strings by pitch: violin, viola, cello or
   basses, string ensembles, synths, ...)          double bass
   ==============================================  =================================================

   "By pitch" picks, per voice, the candidate whose range holds most of the voice's notes (ties: the one
   whose range centre is nearest the voice's median pitch), so a piano part becomes e.g. violin + cello.
   Programs without an exact instrument are reported in a warning.
6. ``pitch_offset`` (semitones) and ``speed`` (times are divided by it) are applied; notes pushed outside
   0..127 are dropped with a warning. Notes outside the chosen instrument's usual range are kept and
   reported (the model extrapolates).
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from midi_ddsp.errors import MidiDDSPWarning, MidiReadError
from midi_ddsp.io.atomic import atomic_write
from midi_ddsp.instruments import INSTRUMENTS, by_name
from midi_ddsp.note_level.notes import Note, NoteSequence

STRINGS = ("violin", "viola", "cello", "double bass")
BRASS = ("trumpet", "horn", "trombone", "tuba")

#: 0-based GM program -> instrument name, or a tuple of candidates chosen per voice by pitch.
PROGRAM_TABLE: dict[int, str | tuple[str, ...]] = {p: STRINGS for p in range(128)}
PROGRAM_TABLE.update({inst.program: inst.name for inst in INSTRUMENTS})
PROGRAM_TABLE.update({59: "trumpet", 64: "saxophone", 65: "saxophone", 67: "saxophone", 69: "oboe",
                      109: "oboe", 111: "oboe", 110: "violin", 61: BRASS, 62: BRASS, 63: BRASS})
PROGRAM_TABLE.update({p: "flute" for p in (72, 74, 75, 76, 77, 78, 79)})
EXACT_PROGRAMS = frozenset(inst.program for inst in INSTRUMENTS)

LEGATO_TOLERANCE_S = 0.05
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch -> scientific pitch name (60 -> C4)."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class MidiReadResult:
    """What :func:`load_midi` found: the voices, and one line per problem worth telling the user."""

    sequences: list[NoteSequence]
    warnings: list[str] = field(default_factory=list)


def read_midi(path, instrument_override: str | None = None, program_map: Mapping[int, str] | None = None,
              pitch_offset: int = 0, speed: float = 1.0,
              legato_tolerance_s: float = LEGATO_TOLERANCE_S) -> list[NoteSequence]:
    """Read a MIDI file into monophonic voices, emitting each problem as a :class:`MidiDDSPWarning`.

    Same arguments as :func:`load_midi`, which returns the warnings as a list instead.
    """
    result = load_midi(path, instrument_override, program_map, pitch_offset, speed, legato_tolerance_s)
    for message in result.warnings:
        warnings.warn(message, MidiDDSPWarning, stacklevel=2)
    return result.sequences


def load_midi(path, instrument_override: str | None = None, program_map: Mapping[int, str] | None = None,
              pitch_offset: int = 0, speed: float = 1.0,
              legato_tolerance_s: float = LEGATO_TOLERANCE_S,
              pedal: Mapping[int, Sequence[tuple[float, float]]] | None = None) -> MidiReadResult:
    """Read a MIDI file into monophonic voices (see the module docstring for every rule).

    Args:
        path: the ``.mid`` file.
        instrument_override: an instrument name for every voice (raises ``UnknownInstrumentError`` if unknown).
        program_map: ``{gm_program (0-based): instrument name}`` entries that take precedence over the table.
        pitch_offset: semitones added to every pitch.
        speed: tempo factor; times are divided by it (2.0 plays twice as fast).
        legato_tolerance_s: the largest overlap treated as legato inside one voice.
        pedal: ``{track index (0-based): [(down_s, up_s), ...]}`` sustain-pedal intervals (seconds after
            ``speed``). On tracks of chordal programs (those mapped to an instrument by pitch: pianos, organs,
            guitars, ensembles, ...) they hold the notes before the split into voices, as on a piano
            (:func:`~midi_ddsp.note_level.controllers.pedal_held_offsets`); other tracks, and chordal ones that
            ``instrument_override`` or ``program_map`` give to one instrument, are left to the per-voice rule
            (:func:`~midi_ddsp.note_level.controllers.apply_sustain`).

    Raises:
        MidiReadError: missing, not a MIDI file, corrupt/truncated, empty or drum-only.
    """
    if not (speed > 0 and np.isfinite(speed)):
        raise ValueError(f"speed must be a positive number, got {speed}")
    override = by_name(instrument_override).name if instrument_override is not None else None
    pmap = {int(p): by_name(name).name for p, name in (program_map or {}).items()}
    pm = _parse(path)
    report: list[str] = []
    sequences: list[NoteSequence] = []
    n_drum_tracks = 0
    pushed_out, all_pitches = 0, []  # notes the pitch offset takes outside 0..127
    for t, track in enumerate(pm.instruments):
        if not track.notes:
            continue
        label = f"track {t + 1} ({track.name.strip() or _program_name(track.program, track.is_drum)})"
        if track.is_drum:
            n_drum_tracks += 1
            report.append(f"{label}: drum track ({len(track.notes)} note{'s' if len(track.notes) > 1 else ''}) "
                          f"skipped (drums are not modelled)")
            continue
        notes, n_zero, off_range = [], 0, []
        for n in track.notes:
            pitch = n.pitch + int(pitch_offset)
            if n.end <= n.start:
                n_zero += 1
            elif not 0 <= pitch <= 127:
                off_range.append(n.pitch)
            else:
                notes.append(Note(pitch, max(n.start, 0.0) / speed, n.end / speed,
                                  int(min(max(n.velocity, 1), 127))))
        if n_zero:
            report.append(f"{label}: {n_zero} zero-length note{'s' if n_zero > 1 else ''} dropped")
        if off_range:
            pushed_out += len(off_range)
            all_pitches += [n.pitch for n in track.notes]
            report.append(f"{label}: {len(off_range)} note{'s' if len(off_range) > 1 else ''} dropped: "
                          f"--pitch-offset {int(pitch_offset):+d} takes {'them' if len(off_range) > 1 else 'it'} "
                          f"outside MIDI 0..127 (from {min(off_range) + int(pitch_offset)} to "
                          f"{max(off_range) + int(pitch_offset)})")
        if not notes:
            continue
        chordal = isinstance(PROGRAM_TABLE[track.program], tuple) and override is None and track.program not in pmap
        if pedal and pedal.get(t) and chordal:  # played by one chosen instrument: the per-voice rule instead
            notes, n_held = _hold_pedal(notes, pedal[t])
            if n_held:
                report.append(f"{label}: the sustain pedal holds {n_held} note{'s' if n_held > 1 else ''} until it "
                              f"lifts, as on a piano (held notes overlapping later ones take voices of their own)")
        voices, n_dup = _split(notes, legato_tolerance_s)
        if n_dup:
            report.append(f"{label}: {n_dup} duplicate note{'s' if n_dup > 1 else ''} (same pitch and onset) merged")
        if len(voices) > 1:
            report.append(f"{label}: polyphonic, split into {len(voices)} monophonic voices")
        chosen = []
        for v, voice in enumerate(voices):
            name = f"{label} voice {v + 1}" if len(voices) > 1 else label
            inst = override or pmap.get(track.program) or _pick(PROGRAM_TABLE[track.program], voice)
            chosen.append(inst)
            seq = NoteSequence(tuple(voice), inst, name)
            sequences.append(seq)
            report.extend(_range_report(seq))
        if override is None and track.program not in pmap and track.program not in EXACT_PROGRAMS:
            report.append(f"{label}: program {track.program} ({_program_name(track.program, False)}) has no "
                          f"model of its own; rendered with {', '.join(dict.fromkeys(chosen))} "
                          f"(choose with --instrument or program_map)")
    if not sequences:
        if n_drum_tracks:
            raise MidiReadError(path, "drums_only", "only drum tracks, nothing to render (drums are not modelled)")
        if pushed_out:
            lo, hi = min(all_pitches), max(all_pitches)
            raise MidiReadError(path, "empty", f"--pitch-offset {int(pitch_offset):+d} takes all {pushed_out} "
                                f"notes outside MIDI 0..127 (the file's pitches are {lo}..{hi}; offsets from "
                                f"{-lo:+d} to {127 - hi:+d} keep them all)")
        raise MidiReadError(path, "empty", "the MIDI file has no notes")
    return MidiReadResult(sequences, report)


def _hold_pedal(notes: list[Note], intervals: Sequence[tuple[float, float]]) -> tuple[list[Note], int]:
    from midi_ddsp.note_level.controllers import pedal_held_offsets

    new = pedal_held_offsets([n.pitch for n in notes], [n.onset_s for n in notes], [n.offset_s for n in notes],
                             intervals)
    held = [n if o == n.offset_s else replace(n, offset_s=float(o)) for n, o in zip(notes, new)]
    return held, sum(o != n.offset_s for n, o in zip(notes, new))


def split_voices(notes: Iterable[Note], legato_tolerance_s: float = LEGATO_TOLERANCE_S) -> list[list[Note]]:
    """Split possibly overlapping notes into monophonic voices, top voice first (rule in the module docstring).

    The union of the voices is the input, except that a note overlapped legato by its successor in the same
    voice is shortened to end at that successor's onset, and exact duplicates (same pitch and onset) are
    merged into the longest one.
    """
    return _split(list(notes), legato_tolerance_s)[0]


def _split(notes: list[Note], tol: float) -> tuple[list[list[Note]], int]:
    voices: list[list[Note]] = []
    n_dup = 0
    order = sorted(notes, key=lambda n: (n.onset_s, -n.pitch, -n.offset_s))
    for _, group in groupby(order, key=lambda n: n.onset_s):
        chord: list[Note] = []
        for note in group:  # top note first; the longest of duplicates first
            if chord and note.pitch == chord[-1].pitch:
                n_dup += 1
            else:
                chord.append(note)
        free = [v for v, voice in enumerate(voices) if _is_free(voice[-1], chord[0].onset_s, tol)]
        free.sort(key=lambda v: (-voices[v][-1].pitch, v))  # current vertical order, top first
        for i, v in enumerate(_align([n.pitch for n in chord], [voices[v][-1].pitch for v in free])):
            note = chord[i]
            if v is None:
                voices.append([note])
                continue
            voice = voices[free[v]]
            if voice[-1].offset_s > note.onset_s:  # legato overlap: end the previous note here
                voice[-1] = replace(voice[-1], offset_s=note.onset_s)
            voice.append(note)
    order_v = sorted(range(len(voices)), key=lambda v: (-np.mean([n.pitch for n in voices[v]]), v))
    return [voices[v] for v in order_v], n_dup


def _is_free(prev: Note, onset: float, tol: float) -> bool:
    overlap = prev.offset_s - onset
    return overlap <= 0 or (overlap <= tol and overlap < 0.5 * prev.duration_s)


def _align(chord: list[int], free: list[int]) -> list[int | None]:
    """Order-preserving matching of chord pitches (descending) to free voices (by last pitch, descending):
    as many notes as possible go to free voices, then with the least total pitch movement, and voices never
    cross. Returns, per chord note, the index into ``free`` or ``None`` (open a new voice)."""
    m, f = len(chord), len(free)
    new_voice = 128  # more than any pitch distance: reuse voices before opening new ones
    cost = np.full((m + 1, f + 1), np.inf)
    cost[0, :] = 0.0
    for i in range(1, m + 1):
        cost[i, 0] = i * new_voice
        for j in range(1, f + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + abs(chord[i - 1] - free[j - 1]),  # match
                             cost[i, j - 1],  # voice j-1 rests
                             cost[i - 1, j] + new_voice)  # note i-1 opens a voice
    out: list[int | None] = [None] * m
    i, j = m, f
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + abs(chord[i - 1] - free[j - 1]):
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i, j - 1]:
            j -= 1
        else:
            i -= 1
    return out


def instrument_for_program(program: int, pitches: Sequence[int] = ()) -> str:
    """The instrument :data:`PROGRAM_TABLE` gives a GM program (0-based), using ``pitches`` where it picks by pitch."""
    if not 0 <= int(program) <= 127:
        raise ValueError(f"GM program {program} is outside 0..127")
    return _pick(PROGRAM_TABLE[int(program)], [Note(int(p), 0.0, 1.0) for p in pitches])


def _pick(entry, notes: Sequence[Note]) -> str:
    if isinstance(entry, str):
        return entry
    pitches = np.array([n.pitch for n in notes]) if notes else np.array([69])
    median = float(np.median(pitches))

    def score(name):
        inst = by_name(name)
        inside = int(np.sum((pitches >= inst.low) & (pitches <= inst.high)))
        return (-inside, abs(median - (inst.low + inst.high) / 2))

    return min(entry, key=score)


def _range_report(seq: NoteSequence) -> list[str]:
    bad = seq.out_of_range()
    if not bad:
        return []
    inst = seq.instrument_info
    shown = ", ".join(f"{note_name(seq[i].pitch)} ({seq[i].pitch}) at {seq[i].onset_s:.2f} s" for i in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return [f"{seq.name} ({inst.name}): {len(bad)} note{'s' if len(bad) > 1 else ''} outside the usual range "
            f"{note_name(inst.low)}-{note_name(inst.high)} ({inst.low}-{inst.high}): {shown}{more}; "
            f"rendered anyway (the model extrapolates)"]


def _program_name(program: int, is_drum: bool) -> str:
    if is_drum:
        return "drums"
    import pretty_midi

    return pretty_midi.program_to_instrument_name(int(program))


def _parse(path):
    """Validate the file and parse it with pretty_midi, turning every failure into a MidiReadError."""
    path = Path(path)
    if not path.exists():
        raise MidiReadError(path, "missing", "no such file")
    if path.is_dir():
        raise MidiReadError(path, "not_midi", "is a folder, not a MIDI file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MidiReadError(path, "missing", f"cannot read ({e.strerror or e})") from None
    if data[:4] == b"RIFF" and data[8:12] == b"RMID" and b"MThd" in data:  # RIFF-wrapped MIDI
        data = data[data.index(b"MThd"):]
    if data[:4] != b"MThd":
        what = "an empty file" if not data else "no MThd header"
        raise MidiReadError(path, "not_midi", f"not a MIDI file ({what})")
    _check_chunks(path, data)
    import pretty_midi

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi's tempo-on-non-zero-track chatter
            return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as e:  # mido/pretty_midi raise many types on bad data
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MidiReadError(path, "corrupt", f"corrupt MIDI file ({detail})") from None


def _check_chunks(path, data: bytes) -> None:
    """Walk the chunk headers so truncation is reported as such (parsers may silently accept it)."""
    if len(data) < 14:
        raise MidiReadError(path, "corrupt", "truncated MIDI file (header cut off)")
    header_len, fmt, n_tracks, division = struct.unpack(">IHHH", data[4:14])
    if header_len < 6 or fmt > 2 or division == 0:
        raise MidiReadError(path, "corrupt", f"corrupt MIDI header (format {fmt}, division {division})")
    pos, found = 8 + header_len, 0
    while pos + 8 <= len(data) and found < n_tracks:
        kind, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if kind == b"MTrk":
            found += 1
        elif not kind.isalnum():
            raise MidiReadError(path, "corrupt", f"corrupt MIDI file (garbage chunk at byte {pos})")
        if pos + 8 + length > len(data):
            raise MidiReadError(path, "corrupt", f"truncated MIDI file (track {found} needs {length} bytes, "
                                                 f"{len(data) - pos - 8} left)")
        pos += 8 + length
    if found < n_tracks:
        raise MidiReadError(path, "corrupt", f"truncated MIDI file ({found} of {n_tracks} tracks present)")


def write_midi(sequences: NoteSequence | Iterable[NoteSequence], path) -> Path:
    """Write voices to a MIDI file, one track per voice with its instrument's GM program; atomic."""
    import pretty_midi

    seqs = [sequences] if isinstance(sequences, NoteSequence) else list(sequences)
    pm = pretty_midi.PrettyMIDI()
    for seq in seqs:
        track = pretty_midi.Instrument(program=seq.instrument_info.program, name=seq.name)
        track.notes = [pretty_midi.Note(n.velocity, n.pitch, n.onset_s, n.offset_s) for n in seq]
        pm.instruments.append(track)
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        pm.write(f)
    return path


__all__ = ["PROGRAM_TABLE", "MidiReadResult", "read_midi", "load_midi", "split_voices", "instrument_for_program",
           "write_midi", "note_name"]
