"""Note data types, the frame layout and per-note editing."""
import numpy as np
import pytest

from midi_ddsp.errors import MidiDDSPError, NoteError
from midi_ddsp.instruments import UnknownInstrumentError
from midi_ddsp.note_level import (
    CONTROL_NAMES,
    Note,
    NoteFrames,
    NoteSequence,
    Performance,
    expand_to_frames,
    frames_to_notes,
    notes_to_frames,
    scale_control,
)


def melody(instrument="violin"):
    return NoteSequence([Note(62, 0.5, 1.0, 90), Note(60, 0.0, 0.5), Note(64, 1.2, 1.7)], instrument, "m")


def test_note_validation_and_normalisation():
    n = Note(np.int64(60), 0, 1, instrument="Contrabass")
    assert n.pitch == 60 and isinstance(n.pitch, int) and n.instrument == "double bass"
    assert n.duration_s == 1.0
    for bad in [dict(pitch=128), dict(pitch=60.5), dict(offset_s=0.0), dict(onset_s=-1.0),
                dict(velocity=0), dict(offset_s=float("nan"))]:
        kw = dict(pitch=60, onset_s=0.0, offset_s=1.0) | bad
        with pytest.raises(NoteError):
            Note(**kw)
    with pytest.raises(UnknownInstrumentError):
        Note(60, 0, 1, instrument="kazoo")


def test_sequence_sorted_monophonic_and_relabelled():
    seq = melody("flute")
    assert [n.pitch for n in seq] == [60, 62, 64]
    assert all(n.instrument == "flute" for n in seq)
    np.testing.assert_array_equal(seq.onsets_s, [0.0, 0.5, 1.2])
    with pytest.raises(NoteError, match="overlaps"):
        NoteSequence([Note(60, 0, 1), Note(62, 0.5, 1.5)], "violin")
    with pytest.raises(NoteError, match="several instruments"):
        NoteSequence([Note(60, 0, 1, instrument="flute"), Note(62, 1, 2, instrument="oboe")])
    assert NoteSequence([Note(60, 0, 1, instrument="oboe")]).instrument == "oboe"
    assert issubclass(NoteError, MidiDDSPError)


def test_out_of_range_transpose_and_time_scale():
    seq = NoteSequence([Note(40, 0, 1), Note(70, 1, 2)], "violin")  # violin range 55..100
    assert seq.out_of_range() == [0]
    assert seq.transposed(12).pitches.tolist() == [52, 82]
    assert seq.time_scaled(2.0).offsets_s.tolist() == [0.5, 1.0]
    with pytest.raises(NoteError):
        seq.transposed(100)


def test_notes_to_frames_layout():
    fr = notes_to_frames(melody(), 500)
    np.testing.assert_array_equal(fr.note_start, [0, 125, 300])
    np.testing.assert_array_equal(fr.note_end, [125, 250, 425])
    assert fr.pitch[124] == 60 and fr.pitch[125] == 62 and fr.pitch[260] == 0 and fr.note_index[260] == -1
    np.testing.assert_array_equal(np.flatnonzero(fr.onset), [0, 125, 300])
    np.testing.assert_array_equal(np.flatnonzero(fr.offset), [124, 249, 424])
    assert fr.position[0] == pytest.approx(1 / 125) and fr.position[124] == 1.0 and fr.position[260] == 0
    assert fr.features().shape == (500, 4)
    # Round trip through onset flags (MIDI-DDSP's data format) and back to notes.
    back = NoteFrames.from_flags(fr.pitch, fr.onset)
    np.testing.assert_array_equal(back.note_start, fr.note_start)
    np.testing.assert_array_equal(back.note_end, fr.note_end)
    notes = frames_to_notes(back, "violin", "m")  # velocity is not on the frame grid
    assert [(n.pitch, n.onset_s, n.offset_s) for n in notes] == [(n.pitch, n.onset_s, n.offset_s) for n in melody()]


def test_repeated_pitch_needs_onset_flag():
    pitch = np.r_[np.full(10, 60), np.full(10, 60)]
    onsets = np.zeros(20)
    onsets[[0, 10]] = 1
    assert NoteFrames.from_flags(pitch, onsets).n_notes == 2
    onsets[10] = 0
    assert NoteFrames.from_flags(pitch, onsets).n_notes == 1


def test_windowed_frames_keep_note_position():
    seq = melody()
    whole = notes_to_frames(seq, 500)
    part = notes_to_frames(seq, 100, start_frame=200)
    np.testing.assert_array_equal(part.pitch, whole.pitch[200:300])
    np.testing.assert_allclose(part.position, whole.position[200:300])
    assert not part.onset[0] and part.n_notes == 3 and part.note_lengths.tolist() == [0, 50, 0]


def test_expand_to_frames():
    fr = notes_to_frames(melody(), 500)
    held = expand_to_frames(np.arange(3.0)[:, None] + 1, fr)
    assert held.shape == (500, 1)
    assert held[0, 0] == 1 and held[200, 0] == 2 and held[260, 0] == 0 and held[400, 0] == 3


def test_performance_editing_returns_new_objects():
    perf = Performance(melody(), np.full((3, 6), 0.5))
    one = perf.set_control("vibrato", 0.9, notes=1)
    assert one.control("vibrato").tolist() == [0.5, 0.9, 0.5]
    assert perf.control("vibrato").tolist() == [0.5, 0.5, 0.5]  # original untouched
    assert perf.set_control("volume", [0.1, 0.2], notes=slice(0, 2)).control("volume").tolist() == [0.1, 0.2, 0.5]
    high = perf.set_control("brightness", 1.0, notes=lambda n: n.pitch > 61)
    assert high.control("brightness").tolist() == [0.5, 1.0, 1.0]
    masked = perf.set_control("attack", 0.0, notes=np.array([True, False, True]))
    assert masked.control("attack").tolist() == [0.0, 0.5, 0.0]
    assert perf.set_control("vol_fluc", 0.0).control("vol_fluc").tolist() == [0.0] * 3
    assert scale_control(perf, "volume", 2.0, notes=[0, -1]).control("volume").tolist() == [1.0, 0.5, 1.0]
    assert perf.with_controls(np.zeros((3, 6))).controls.sum() == 0
    with pytest.raises(KeyError, match="unknown control"):
        perf.set_control("loudness", 1.0)
    with pytest.raises(IndexError):
        perf.set_control("volume", 1.0, notes=3)
    with pytest.raises(ValueError):
        perf.set_control("volume", [1.0, 2.0], notes=None)
    with pytest.raises(ValueError):
        perf.controls[0, 0] = 1.0  # read-only
    with pytest.raises(NoteError, match="shape"):
        Performance(melody(), np.zeros((2, 6)))
    with pytest.raises(NoteError, match="not finite"):
        Performance(melody(), np.full((3, 6), np.nan))
    assert CONTROL_NAMES == ("volume", "vol_fluc", "vol_peak_pos", "vibrato", "brightness", "attack")
