"""MIDI controllers: reading (bend + RPN range, CC curves, channels), the note-level mapping (sustain,
vibrato, loudness, f0) and the MIDI export round trip. Fast: MIDI files made here with mido/pretty_midi."""
from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest
import torch

from midi_ddsp.io.controllers import StepCurve, controllers_for_voices, read_track_controllers
from midi_ddsp.io.midi import load_midi
from midi_ddsp.io.midi_export import (CONTROL_CC, export_midi, fourteen_bit, is_performance_midi,
                                      read_performance_midi)
from midi_ddsp.note_level import controllers as nc
from midi_ddsp.note_level.expression import vibrato_depth
from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance
from midi_ddsp.synthesis.params import SynthParams

TEMPO, TPB = 500_000, 960


def write(path, tracks):
    """tracks: [(program, channel, [(time_s, mido.Message)])]; a tempo track first."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    head = mido.MidiTrack()
    head.append(mido.MetaMessage("set_tempo", tempo=TEMPO))
    mid.tracks.append(head)
    for program, ch, events in tracks:
        tr = mido.MidiTrack()
        tr.append(mido.Message("program_change", program=program, channel=ch))
        last = 0
        for t, msg in sorted(events, key=lambda e: e[0]):  # stable: same-time events keep their order
            tick = int(round(t * 1e6 / TEMPO * TPB))
            tr.append(msg.copy(channel=ch, time=tick - last))
            last = tick
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def note(p, s, e, v=100):
    return [(s, mido.Message("note_on", note=p, velocity=v)), (e, mido.Message("note_off", note=p, velocity=0))]


def cc(t, c, v):
    return (t, mido.Message("control_change", control=c, value=int(v)))


def bend(t, v):
    return (t, mido.Message("pitchwheel", pitch=int(v)))


def rpn(t, semis, cents=0):
    return [cc(t, 101, 0), cc(t, 100, 0), cc(t, 6, semis), cc(t, 38, cents), cc(t, 101, 127), cc(t, 100, 127)]


# ------------------------------------------------------------------------------------------------ reading
def test_bend_default_range_is_two_semitones(tmp_path):
    f = write(tmp_path / "a.mid", [(40, 0, note(69, 0, 2) + [bend(0.5, 8191), bend(1.0, -8192), bend(1.5, 4096)])])
    ev = read_track_controllers(f)[0]
    assert ev.bend_ranges == ()
    np.testing.assert_allclose(ev.bend.at([0.2, 0.6, 1.1, 1.6]), [0.0, 8191 / 8192 * 2, -2.0, 1.0])
    assert ev.present == {"bend"}


def test_bend_uses_rpn_range_with_cents_and_later_changes(tmp_path):
    events = note(69, 0, 3) + rpn(0, 12) + [bend(0.5, -8192)] + rpn(1.0, 2, 50) + [bend(1.5, -8192)]
    ev = read_track_controllers(write(tmp_path / "a.mid", [(40, 0, events)]))[0]
    assert ev.bend_ranges == (12.0, 2.0, 2.5)  # MSB resets the cents, then the LSB sets them
    np.testing.assert_allclose(ev.bend.at([0.7, 1.7]), [-12.0, -2.5])


def test_data_increment_and_decrement_step_the_bend_range_by_a_cent(tmp_path):
    """CC96 / CC97 on RPN 0 move the range one cent (the LSB), carried into the semitones (RP-018)."""
    select = [cc(0, 101, 0), cc(0, 100, 0), cc(0, 6, 2), cc(0, 38, 99)]    # RPN 0 stays selected
    events = note(69, 0, 3) + select + [cc(0.2, 96, 0), bend(0.5, -8192), cc(1.0, 97, 5), cc(1.0, 97, 5),
                                        bend(1.5, -8192)]
    ev = read_track_controllers(write(tmp_path / "a.mid", [(40, 0, events)]))[0]
    assert ev.bend_ranges == (2.0, 2.99, 3.0, 2.98)
    np.testing.assert_allclose(ev.bend.at([0.7, 1.7]), [-3.0, -2.98])
    other = note(69, 0, 2) + [cc(0, 101, 0), cc(0, 100, 1), cc(0.1, 96, 0), bend(0.5, 8191)]   # fine tuning
    assert read_track_controllers(write(tmp_path / "b.mid", [(40, 0, other)]))[0].bend_ranges == ()


def test_rpn_sorted_by_controller_number_still_reads(tmp_path):
    """pretty_midi writes the CCs of one tick sorted by number (CC6 before CC100/101)."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=40)
    inst.notes.append(pretty_midi.Note(100, 69, 0.0, 2.0))
    inst.control_changes += [pretty_midi.ControlChange(n, v, 0.0) for n, v in ((101, 0), (100, 0), (6, 7), (38, 0))]
    inst.pitch_bends.append(pretty_midi.PitchBend(8191, 0.5))
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "pm.mid"))
    ev = read_track_controllers(tmp_path / "pm.mid")[0]
    assert ev.bend_ranges == (7.0,)
    assert ev.bend.at(1.0) == pytest.approx(7 * 8191 / 8192)


def test_rpn_of_another_parameter_does_not_set_the_range(tmp_path):
    events = note(69, 0, 2) + [cc(0, 101, 0), cc(0, 100, 1), cc(0, 6, 40), bend(0.5, 8191)]  # RPN 1: fine tuning
    ev = read_track_controllers(write(tmp_path / "a.mid", [(40, 0, events)]))[0]
    assert ev.bend_ranges == ()
    assert ev.bend.at(1.0) == pytest.approx(2 * 8191 / 8192)


def test_cc_curves_on_frames_and_speed(tmp_path):
    events = note(69, 0, 3) + [cc(0.5, 11, 30), cc(1.0, 11, 90), cc(0.25, 1, 64), cc(0.4, 7, 80), cc(0.8, 64, 127),
                               cc(2.0, 64, 0)]
    f = write(tmp_path / "a.mid", [(40, 0, events)])
    voices = load_midi(f).sequences
    ev = controllers_for_voices(f, [v.name for v in voices])[0]
    c = ev.frames(1000, 250.0)
    assert c.present == {"cc1", "cc7", "cc11", "sustain"}
    assert c.cc11[[0, 124, 125, 249, 250]].tolist() == [127, 127, 30, 30, 90]  # 0.5 s = frame 125
    assert c.cc7[100] == 80 and c.cc1[63] == 64 and c.cc1[62] == 0
    assert not c.sustain[199] and c.sustain[200] and c.sustain[499] and not c.sustain[500]
    fast = controllers_for_voices(f, [v.name for v in voices], speed=2.0)[0]
    assert fast.curve(11).at(0.26) == 30 and fast.curve(11).at(0.24) == 127
    assert ev.sustain_intervals(3.0) == [(0.8, 2.0)]


def test_reset_values_only_are_neutral(tmp_path):
    events = note(69, 0, 1) + [cc(0, 1, 0), cc(0, 7, 100), cc(0, 11, 127), cc(0, 64, 0), bend(0, 0)] + rpn(0, 2)
    f = write(tmp_path / "a.mid", [(40, 0, events)])
    assert read_track_controllers(f)[0].present == frozenset()
    assert controllers_for_voices(f, [v.name for v in load_midi(f).sequences]) == [None]


def test_controller_lane_on_another_track_reaches_the_channel(tmp_path):
    """MIDI channels are global: a notes-free track on channel 0 steers channel 0's notes; channel 1 not."""
    f = write(tmp_path / "a.mid", [(40, 0, note(69, 0, 2)), (0, 0, [cc(0.5, 11, 20)]), (42, 1, note(48, 0, 2))])
    voices = load_midi(f).sequences
    assert [v.name for v in voices] == ["track 1 (Violin)", "track 2 (Cello)"]
    ev = controllers_for_voices(f, [v.name for v in voices])
    assert ev[0].curve(11).at(1.0) == 20 and ev[1] is None


def test_polyphonic_track_shares_its_channel_controllers(tmp_path):
    f = write(tmp_path / "a.mid", [(0, 0, note(72, 0, 1) + note(60, 0, 1) + [bend(0.5, 4096), cc(0, 64, 127)])])
    voices = load_midi(f).sequences
    assert len(voices) == 2
    ev = controllers_for_voices(f, [v.name for v in voices])
    assert all(e is not None and e.bend.at(0.6) == pytest.approx(1.0) for e in ev)


def test_step_curve_holds_values():
    c = StepCurve(np.array([1.0, 0.5, 2.0]), np.array([10.0, 5.0, 20.0]), default=-1.0)
    assert c.at([0.0, 0.5, 0.9, 1.0, 3.0]).tolist() == [-1.0, 5.0, 5.0, 10.0, 20.0]
    assert not c.neutral and StepCurve.empty(3.0).neutral


# ----------------------------------------------------------------------------------------- note level
def test_sustain_holds_until_pedal_up_but_not_past_the_next_note():
    on = np.array([0.0, 1.0, 3.0, 5.0])
    off = np.array([0.5, 1.5, 3.5, 5.5])
    pedal = [(0.4, 0.9), (1.2, 4.0), (5.2, 9.0)]
    new = nc.sustained_offsets(on, off, pedal)
    # 0.5 in (0.4, 0.9) -> 0.9; 1.5 -> pedal up 4.0 capped at next onset 3.0; 3.5 -> 4.0; 5.5 -> 9.0
    np.testing.assert_allclose(new, [0.9, 3.0, 4.0, 9.0])
    assert nc.sustained_offsets(on, off, [(2.0, 2.5)]).tolist() == off.tolist()  # releases outside the pedal


def test_pedal_on_a_chordal_track_holds_until_pedal_up_or_the_same_key_again():
    pitch = np.array([60, 64, 60, 67, 72])
    on = np.array([0.0, 0.5, 1.0, 1.5, 3.0])
    off = np.array([0.4, 0.9, 1.4, 1.9, 3.5])
    new = nc.pedal_held_offsets(pitch, on, off, [(0.2, 2.5)])
    # C4 re-struck at 1.0 -> 1.0; E4, the second C4 and G4 held to pedal up 2.5; C5 released after it: as played
    np.testing.assert_allclose(new, [1.0, 2.5, 2.5, 2.5, 3.5])
    shuffled = np.array([3, 0, 4, 2, 1])
    np.testing.assert_allclose(nc.pedal_held_offsets(pitch[shuffled], on[shuffled], off[shuffled], [(0.2, 2.5)]),
                               new[shuffled])
    assert nc.pedal_held_offsets(pitch, on, off, []).tolist() == off.tolist()


def test_apply_sustain_keeps_voice_monophonic():
    seq = NoteSequence((Note(60, 0, 0.5), Note(62, 0.6, 1.0)), "violin", "v")
    out = nc.apply_sustain(seq, [(0.0, 5.0)])
    assert [n.offset_s for n in out] == [0.6, 5.0] and [n.pitch for n in out] == [60, 62]


def test_vibrato_mapping():
    v = np.array([0.4, 0.4, 0.4, 0.4])
    np.testing.assert_allclose(nc.vibrato_from_modulation(v, [0.0, 0.25, 0.5, 1.0]), [0.0, 0.2, 0.4, 1.0])
    seq = NoteSequence((Note(69, 0.0, 2.0), Note(71, 2.0, 3.0)), "violin")
    frames = notes_to_frames(seq, 800, 250.0)
    cc1 = np.where(np.arange(800) < 250, 0.0, 127.0)  # step at 1 s inside note 0; note 1 at 127
    v_new, scale = nc.steer_vibrato(np.array([0.4, 0.4]), cc1, frames)
    np.testing.assert_allclose(v_new, [1.0, 1.0])
    assert np.all(scale[:250] == 0) and np.all(scale[250:750] == 1) and np.all(scale[750:] == 1)


def test_rescale_vibrato_removes_vibrato_and_keeps_the_glide():
    fr, n = 250.0, 1000
    t = np.arange(n) / fr
    seq = NoteSequence((Note(69, 0.0, 4.0),), "violin")
    frames = notes_to_frames(seq, n, fr)
    glide = 0.1 * t  # slow intonation drift
    dev = glide + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    scale = np.where(t < 2.0, 0.0, 1.0)
    out = nc.rescale_vibrato(dev, scale, frames)
    depth = vibrato_depth(out, np.array([50, 550]), np.array([450, 950]), fr)
    assert depth[0] < 0.03 and depth[1] == pytest.approx(0.3, abs=0.03)
    mid = slice(100, 400)
    assert np.abs(out[mid] - glide[mid]).max() < 0.03  # trend kept where the vibrato is gone


def test_rescale_vibrato_in_notes_shorter_than_the_trend_window():
    """A CC1 change inside a 0.3 s note (shorter than the 0.67 s trend window; it crashed before)."""
    fr, n = 250.0, 200
    t = np.arange(n) / fr
    seq = NoteSequence((Note(69, 0.0, 0.3), Note(71, 0.3, 0.304)), "violin")
    frames = notes_to_frames(seq, n, fr)
    dev = 0.3 * np.sin(2 * np.pi * 6.0 * t)
    scale = np.where(t < 0.15, 1.0, 0.0)
    out = nc.rescale_vibrato(dev, scale, frames)
    assert out.shape == dev.shape and np.all(np.isfinite(out))
    a, b = frames.note_start[0], frames.note_end[0]
    assert np.ptp(out[a + 45:b]) < 0.5 * np.ptp(dev[a + 45:b])   # vibrato cut after the step


def test_expression_gain_curve():
    np.testing.assert_allclose(nc.expression_gain_db(cc11=[127, 64, 0])[:2], [0.0, 40 * np.log10(64 / 127)])
    assert nc.expression_gain_db(cc11=[0])[0] == nc.MIN_GAIN_DB
    assert nc.expression_gain_db(cc7=[100])[0] == pytest.approx(0.0)
    assert nc.expression_gain_db(cc7=[127], cc11=[127])[0] == pytest.approx(40 * np.log10(1.27))


def test_volume_steering_and_frame_gain():
    seq = NoteSequence((Note(69, 0.0, 1.0), Note(71, 1.0, 2.0)), "violin")
    frames = notes_to_frames(seq, 750, 250.0)
    g = np.where(np.arange(750) < 250, -12.0, -6.0)
    per_note = nc.note_means(g, frames)
    np.testing.assert_allclose(per_note, [-12.0, -6.0])
    np.testing.assert_allclose(nc.steer_volume([0.5, 0.5], per_note, 30.0), [0.1, 0.3])
    np.testing.assert_allclose(nc.steer_volume([0.1, 0.9], [-30.0, 30.0], 30.0), [0.0, 1.0])  # corpus range
    h = nc.frame_gain_db(g, [-12.0, -3.0], frames, smooth_s=0.0)  # note 2 delivered 3 dB too much
    np.testing.assert_allclose(h[:250], 0.0)
    np.testing.assert_allclose(h[260:], -3.0)  # held through the release after the last note


def test_steer_f0_adds_bend_in_semitones():
    seq = NoteSequence((Note(69, 0.0, 1.0),), "violin")
    frames = notes_to_frames(seq, 300, 250.0)
    f0 = np.full(300, 440.0)
    bend = np.linspace(0, 2, 300)
    out = nc.steer_f0(f0, frames, bend)
    np.testing.assert_allclose(12 * np.log2(out / 440.0), bend, atol=1e-4)


# ------------------------------------------------------------------------------------------------- export
def _performance_and_params(n=700, fr=250.0):
    seq = NoteSequence((Note(69, 0.2, 1.0, 90), Note(72, 1.0, 1.9, 64), Note(67, 2.2, 2.6, 110)), "violin", "lead")
    rng = np.random.default_rng(0)
    controls = rng.uniform(0, 1, (3, 6))
    frames = notes_to_frames(seq, n, fr)
    t = np.arange(n) / fr
    dev = 0.3 * np.sin(2 * np.pi * 5 * t) + np.where(t > 1.2, 2.6, 0.0)  # vibrato and a bend beyond +-2
    f0 = nc.semitones_to_hz(nc.held_pitch(frames) + dev)
    amp_db = -30 + 10 * np.sin(t)
    amp = 10 ** (amp_db / 20)
    params = SynthParams(torch.tensor(f0, dtype=torch.float32)[None, :, None],
                         torch.tensor(amp, dtype=torch.float32)[None, :, None], torch.ones(1, n, 4) / 4,
                         torch.zeros(1, n, 3), fr)
    return Performance(seq, controls), params, dev, amp_db


def test_export_round_trip_keeps_notes_and_controls(tmp_path):
    perf, params, dev, amp_db = _performance_and_params()
    path = export_midi(tmp_path / "take.mid", [perf], [params])
    assert is_performance_midi(path)
    voices = load_midi(path).sequences
    assert len(voices) == 1
    assert [(n.pitch, n.velocity) for n in voices[0]] == [(n.pitch, n.velocity) for n in perf.sequence]
    # times on the 1 ms grid come back exactly (to float rounding of tick -> seconds)
    np.testing.assert_allclose(voices[0].onsets_s, perf.sequence.onsets_s, rtol=0, atol=1e-12)
    np.testing.assert_allclose(voices[0].offsets_s, perf.sequence.offsets_s, rtol=0, atol=1e-12)
    assert voices[0].instrument == "violin"
    (iv,) = read_performance_midi(path, voices)
    np.testing.assert_allclose(iv.controls, perf.controls, atol=0.5 / 16383 + 1e-12)
    frames = notes_to_frames(voices[0], 700, 250.0)
    bend = iv.bend.sample(700, 250.0)
    assert np.abs(bend - dev).max() <= 3 / 16384 + 1e-6  # range 3 semitones (the curve reaches 2.9)
    loud = iv.loudness_db.sample(700, 250.0)
    assert np.abs(loud - amp_db).max() < 0.5 / 256 + 1e-4
    assert np.all(np.isfinite(nc.held_pitch(frames)))


def test_export_without_params_and_clipped_controls(tmp_path):
    seq = NoteSequence((Note(60, 0.0, 0.5),), "cello")
    perf = Performance(seq, np.array([[1.4, -0.2, 0.5, 0.5, 0.5, 0.5]]))
    path = export_midi(tmp_path / "c.mid", perf)
    voices = load_midi(path).sequences
    (iv,) = read_performance_midi(path, voices)
    assert voices[0].instrument == "cello" and iv.bend is None and iv.loudness_db is None
    np.testing.assert_allclose(iv.controls[0, :2], [1.0, 0.0])


def test_coarse_edit_drops_stale_fine_value(tmp_path):
    msb = StepCurve(np.array([0.0, 1.0]), np.array([64.0, 100.0]))
    lsb = StepCurve(np.array([0.0]), np.array([127.0]))
    np.testing.assert_allclose(fourteen_bit(msb, lsb, [0.5, 1.5]), [64 * 128 + 127, 100 * 128])


def test_deleted_lane_leaves_that_control_to_the_model(tmp_path):
    perf, params, _, _ = _performance_and_params()
    path = export_midi(tmp_path / "take.mid", [perf], [params])
    mid = mido.MidiFile(str(path))
    brightness = CONTROL_CC["brightness"]
    for tr in mid.tracks[1:]:
        keep, carry = [], 0
        for msg in tr:
            if msg.type == "control_change" and msg.control in (brightness, brightness + 32):
                carry += msg.time
                continue
            keep.append(msg.copy(time=msg.time + carry))
            carry = 0
        tr[:] = keep
    mid.save(str(path))
    (iv,) = read_performance_midi(path, load_midi(path).sequences)
    col = CONTROL_NAMES.index("brightness")
    assert np.all(np.isnan(iv.controls[:, col]))
    assert np.all(np.isfinite(np.delete(iv.controls, col, axis=1)))


def test_plain_midi_is_not_a_performance_file(tmp_path):
    assert not is_performance_midi(write(tmp_path / "a.mid", [(40, 0, note(60, 0, 1))]))
