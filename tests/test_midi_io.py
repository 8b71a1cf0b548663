"""MIDI files -> monophonic voices: voice splitting, GM mapping, warnings and one-line errors."""
from collections import Counter

import mido
import numpy as np
import pretty_midi
import pytest

from midi_ddsp.errors import MidiDDSPError, MidiDDSPWarning, MidiReadError
from midi_ddsp.instruments import UnknownInstrumentError
from midi_ddsp.io.midi import PROGRAM_TABLE, instrument_for_program, load_midi, read_midi, split_voices, write_midi
from midi_ddsp.note_level import Note

pytestmark = pytest.mark.filterwarnings("ignore::midi_ddsp.errors.MidiDDSPWarning")


def write(tmp_path, tracks, name="t.mid", tempo=120.0):
    """tracks: list of (program, is_drum, [(pitch, start_s, end_s), ...], track name)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for program, is_drum, notes, tname in tracks:
        inst = pretty_midi.Instrument(program=program, is_drum=is_drum, name=tname)
        inst.notes = [pretty_midi.Note(100, p, s, e) for p, s, e in notes]
        pm.instruments.append(inst)
    path = tmp_path / name
    pm.write(str(path))
    return path


# A four-part chord progression (I - IV - V7 - I in C), one chord per second, with a passing tone in the bass.
PROGRESSION = [
    (72, 0, 1), (67, 0, 1), (64, 0, 1), (48, 0, 1),
    (72, 1, 2), (69, 1, 2), (65, 1, 2), (53, 1, 2),
    (71, 2, 3), (67, 2, 3), (65, 2, 3), (55, 2, 2.5), (53, 2.5, 3),
    (72, 3, 4), (67, 3, 4), (64, 3, 4), (48, 3, 4),
]


def key(n):
    return (n.pitch, round(n.onset_s, 3), round(n.offset_s, 3))


def test_chord_progression_splits_into_monophonic_voices_whose_union_is_the_input(tmp_path):
    seqs = read_midi(write(tmp_path, [(0, False, PROGRESSION, "Piano")]))
    assert len(seqs) == 4
    for s in seqs:  # monophonic: sorted and non-overlapping (also enforced by NoteSequence)
        assert np.all(s.offsets_s[:-1] <= s.onsets_s[1:] + 1e-9)
    assert Counter(key(n) for s in seqs for n in s) == Counter(key(Note(*n)) for n in PROGRESSION)
    # voices are ordered top to bottom and never cross: the soprano is the top line at every chord
    assert [s.pitches.tolist() for s in seqs] == [[72, 72, 71, 72], [67, 69, 67, 67], [64, 65, 65, 64],
                                                   [48, 53, 55, 53, 48]]
    assert all(s.name.startswith("track 1 (Piano) voice ") for s in seqs)


def test_split_voices_function_and_legato_overlaps():
    legato = [Note(60 + i, 0.5 * i, 0.5 * i + 0.53) for i in range(6)]  # 30 ms overlaps: one line
    voices = split_voices(legato)
    assert len(voices) == 1
    assert [n.offset_s for n in voices[0]][:-1] == [n.onset_s for n in legato[1:]]  # trimmed to the next onset
    melody_over_pedal = [Note(40, 0, 4)] + [Note(70 + i, i, i + 1) for i in range(4)]
    top, bass = split_voices(melody_over_pedal)
    assert [n.pitch for n in top] == [70, 71, 72, 73] and [n.pitch for n in bass] == [40]
    assert split_voices([]) == []


def test_duplicates_are_merged_with_a_warning(tmp_path):
    path = write(tmp_path, [(40, False, [(60, 0, 0.5), (60, 0, 0.5), (62, 1, 2)], "")])
    result = load_midi(path)
    assert len(result.sequences) == 1 and result.sequences[0].pitches.tolist() == [60, 62]
    longest = split_voices([Note(60, 0, 0.5), Note(60, 0, 1.0)])  # the longest duplicate is kept
    assert len(longest) == 1 and longest[0][0].offset_s == 1.0
    assert any("duplicate" in w for w in result.warnings)


def test_gm_programs_map_to_instruments(tmp_path):
    exact = {40: "violin", 41: "viola", 42: "cello", 43: "double bass", 73: "flute", 68: "oboe", 71: "clarinet",
             66: "saxophone", 70: "bassoon", 56: "trumpet", 60: "horn", 57: "trombone", 58: "tuba"}
    for program, name in exact.items():
        assert PROGRAM_TABLE[program] == name
    assert instrument_for_program(65) == "saxophone" and instrument_for_program(72) == "flute"
    assert instrument_for_program(0, [84, 88, 91]) == "violin"  # piano, high part
    assert instrument_for_program(0, [30, 33, 35]) == "double bass"  # piano, low part
    assert instrument_for_program(61, [40, 45, 50]) in ("trombone", "tuba")

    tracks = [(40, False, [(76, 0, 1)], "vln"), (73, False, [(79, 0, 1)], "fl"),
              (0, False, [(84, 0, 1), (36, 0, 1)], "pno")]
    result = load_midi(write(tmp_path, tracks))
    assert [s.instrument for s in result.sequences] == ["violin", "flute", "violin", "double bass"]
    assert any("program 0 (Acoustic Grand Piano) has no model" in w for w in result.warnings)
    assert not any("track 1" in w for w in result.warnings)  # exact program, in range: nothing to say

    mapped = load_midi(write(tmp_path, tracks), program_map={0: "clarinet"})
    assert [s.instrument for s in mapped.sequences] == ["violin", "flute", "clarinet", "clarinet"]
    forced = read_midi(write(tmp_path, tracks), instrument_override="tuba")
    assert {s.instrument for s in forced} == {"tuba"}
    with pytest.raises(UnknownInstrumentError):
        read_midi(write(tmp_path, tracks), instrument_override="kazoo")


def test_drums_skipped_and_out_of_range_reported(tmp_path):
    path = write(tmp_path, [(73, False, [(48, 0, 1), (72, 1, 2)], "Flute"), (0, True, [(36, 0, 0.1)], "Kit")])
    with pytest.warns(MidiDDSPWarning) as record:
        seqs = read_midi(path)
    messages = [str(r.message) for r in record]
    assert len(seqs) == 1 and seqs[0].instrument == "flute" and len(seqs[0]) == 2  # kept, not dropped
    assert any("drum track" in m and "skipped" in m for m in messages)
    assert any("outside the usual range" in m and "C3 (48)" in m for m in messages)


def test_pitch_offset_and_speed(tmp_path):
    path = write(tmp_path, [(40, False, [(60, 0.5, 1.0), (120, 1.0, 2.0)], "")])
    result = load_midi(path, pitch_offset=12, speed=2.0)
    (seq,) = result.sequences
    assert seq.pitches.tolist() == [72]  # 120 + 12 leaves the MIDI range: dropped with a warning
    assert seq.onsets_s.tolist() == pytest.approx([0.25]) and seq.offsets_s.tolist() == pytest.approx([0.5])
    assert any(w.endswith("1 note dropped: --pitch-offset +12 takes it outside MIDI 0..127 (from 132 to 132)")
               for w in result.warnings)
    with pytest.raises(ValueError):
        load_midi(path, speed=0)
    # an offset that takes every note out says so (not "the MIDI file has no notes")
    with pytest.raises(MidiReadError, match=r"--pitch-offset \+200 takes all 2 notes outside MIDI 0..127 "
                                            r"\(the file's pitches are 60..120; offsets from -60 to \+7"):
        load_midi(path, pitch_offset=200)


def test_tempo_changes_are_honoured(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track += [mido.MetaMessage("set_tempo", tempo=500000, time=0), mido.Message("note_on", note=60, velocity=90),
              mido.Message("note_off", note=60, time=480), mido.MetaMessage("set_tempo", tempo=1000000, time=0),
              mido.Message("note_on", note=62, velocity=90), mido.Message("note_off", note=62, time=480)]
    mid.tracks.append(track)
    mid.save(tmp_path / "tempo.mid")
    (seq,) = read_midi(tmp_path / "tempo.mid")
    assert seq.onsets_s.tolist() == pytest.approx([0.0, 0.5]) and seq.offsets_s.tolist() == pytest.approx([0.5, 1.5])
    assert seq.velocities.tolist() == [90, 90]


def test_write_then_read_round_trip(tmp_path):
    seqs = read_midi(write(tmp_path, [(0, False, PROGRESSION, "Piano")]))
    write_midi(seqs, tmp_path / "out.mid")
    again = read_midi(tmp_path / "out.mid")
    assert [s.instrument for s in again] == [s.instrument for s in seqs]
    for a, b in zip(again, seqs):
        assert a.pitches.tolist() == b.pitches.tolist()
        np.testing.assert_allclose(a.onsets_s, b.onsets_s, atol=2e-3)


def _valid_bytes(tmp_path):
    return write(tmp_path, [(40, False, [(60 + i, 0.5 * i, 0.5 * i + 0.5) for i in range(8)], "")]).read_bytes()


def _bad_data_byte(data: bytes) -> bytes:
    b = bytearray(data)
    k = b.index(0x90, 30)
    b[k + 1] = 0xC8  # a data byte > 127
    return bytes(b)


@pytest.mark.parametrize(
    "make, reason, text",
    [
        (None, "missing", "no such file"),
        (lambda d: b"", "not_midi", "not a MIDI file (an empty file)"),
        (lambda d: b"hello, I am a text file\n", "not_midi", "no MThd header"),
        (lambda d: d[:-10], "corrupt", "truncated MIDI file"),
        (lambda d: d[:20], "corrupt", "truncated MIDI file"),
        (lambda d: d.replace(b"\x90", b"\xf4", 1), "corrupt", "corrupt MIDI file (undefined status byte"),
        (_bad_data_byte, "corrupt", "corrupt MIDI file"),
    ],
)
def test_unreadable_files_raise_one_line_errors(tmp_path, make, reason, text):
    path = tmp_path / "in.mid"
    if make is not None:
        path.write_bytes(make(_valid_bytes(tmp_path)))
    with pytest.raises(MidiReadError) as info:
        read_midi(path)
    assert info.value.reason == reason and text in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value) and isinstance(info.value, MidiDDSPError)


def test_empty_and_drum_only_files(tmp_path):
    empty = write(tmp_path, [(40, False, [], "silent")], "empty.mid")
    with pytest.raises(MidiReadError, match="no notes") as info:
        read_midi(empty)
    assert info.value.reason == "empty"
    drums = write(tmp_path, [(0, True, [(36, 0, 0.1), (38, 0.5, 0.6)], "Kit")], "drums.mid")
    with pytest.raises(MidiReadError, match="only drum tracks") as info:
        read_midi(drums)
    assert info.value.reason == "drums_only"
    with pytest.raises(MidiReadError, match="folder"):
        read_midi(tmp_path)
