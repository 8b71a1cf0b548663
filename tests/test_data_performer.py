"""The humanising performer and the MIDI it writes (no FluidSynth needed)."""
from __future__ import annotations

import mido
import numpy as np
import pytest

from midi_ddsp.data.corpus_sources import Melody
from midi_ddsp.data.performer import MelodyTooShortError, PerformedPiece, PerformerConfig, perform
from midi_ddsp.data.render import BEND_RANGE_SEMITONES, FLUIDSYNTH_LATENCY_S, TICKS_PER_BEAT, write_midi
from midi_ddsp.instruments import by_name


def chorale_like(n_bars: int = 24, seed: int = 0) -> Melody:
    """A hymn-like line: quarters and halves, a fermata every 4 bars, one rest."""
    rng = np.random.default_rng(seed)
    pitch, onset, dur, bs, ferm = [], [], [], [], []
    t = 0.0
    p = 67
    for bar in range(n_bars):
        pattern = [1, 1, 1, 1] if bar % 4 != 3 else [2, 2]
        for k, d in enumerate(pattern):
            p = int(np.clip(p + rng.choice([-2, -1, 1, 2, 0, 3, -3]), 60, 76))
            pitch.append(p)
            onset.append(t)
            dur.append(float(d))
            bs.append(1.0 if k == 0 else 0.5 if k == 2 or d == 2 else 0.25)
            ferm.append(bar % 4 == 3 and k == len(pattern) - 1)
            t += d
        if bar == 11:
            t += 1.0  # a rest
    return Melody(key="test/chorale#0", source="test/chorale", pitch=pitch, onset_ql=onset, duration_ql=dur,
                  beat_strength=bs, fermata=ferm)


def test_deterministic_and_seed_dependent():
    m = chorale_like()
    a = perform(m, by_name("violin"), seed=5)
    b = perform(m, by_name("violin"), seed=5)
    c = perform(m, by_name("violin"), seed=6)
    for k in a.notes:
        np.testing.assert_array_equal(a.notes[k], b.notes[k])
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k], b.curves[k])
    assert a.duration_s != c.duration_s or not np.array_equal(a.notes["velocity"], c.notes["velocity"])


@pytest.mark.parametrize("name", ["violin", "clarinet", "trumpet", "double bass"])
def test_notes_are_a_valid_monophonic_line(name):
    p = perform(chorale_like(), by_name(name), seed=1, transpose=-24 if name == "double bass" else 0)
    n = p.notes
    assert np.all(n["offset_s"] > n["onset_s"])
    assert np.all(n["offset_s"][:-1] <= n["onset_s"][1:] + 1e-9)
    assert np.all(np.diff(n["onset_s"]) > 0)
    assert n["velocity"].min() >= 1 and n["velocity"].max() <= 127
    assert p.curves["cc11"].min() >= 1 and p.curves["cc11"].max() <= 127
    assert 8.0 <= p.duration_s <= 60.0 + 5.0
    # curves cover the piece at 250 Hz
    assert len(p.curves["f0_hz"]) == int(np.ceil(p.duration_s * 250)) + 1
    # velocities vary (dynamics), CC11 moves (swells)
    assert n["velocity"].std() > 4
    assert p.curves["expression_db"].min() < -3


def test_true_f0_is_pitch_plus_cents():
    p = perform(chorale_like(), by_name("flute"), seed=2)
    c = p.curves
    held = c["note_index"] >= 0
    pitch = p.notes["pitch"][c["note_index"][held]]
    expected = 440.0 * 2 ** ((pitch + c["cents"][held] / 100 - 69) / 12)
    cents_err = 1200 * np.log2(c["f0_hz"][held] / expected)
    assert np.abs(cents_err).max() < 0.1  # bend quantisation is 0.024 cents


def test_tuning_offsets_are_precompensated():
    m = chorale_like()
    off = {p: 30.0 for p in range(40, 100)}
    a = perform(m, by_name("violin"), seed=3)
    b = perform(m, by_name("violin"), seed=3, tuning_offsets_cents=off)
    # same sounding pitch, bend lowered by 30 cents
    np.testing.assert_allclose(a.curves["f0_hz"], b.curves["f0_hz"], rtol=2e-4)
    shift = (a.curves["bend"] - b.curves["bend"]) / 8192 * 100 * BEND_RANGE_SEMITONES
    assert abs(np.median(shift) - 30.0) < 0.1


def test_vibrato_rate_measured_from_curve():
    """The vibrato in the f0 curve oscillates at the note's recorded rate (4.5-7 Hz)."""
    m = chorale_like()
    p = perform(m, by_name("violin"), seed=4)
    n, c = p.notes, p.curves
    rates = n["vibrato_rate_hz"][n["vibrato_depth_cents"] > 0]
    assert rates.size > 5 and rates.min() >= 4.5 and rates.max() <= 7.0
    checked = 0
    for i in np.flatnonzero((n["vibrato_depth_cents"] > 8) & (n["offset_s"] - n["onset_s"] > 0.9)):
        fr = np.flatnonzero(c["note_index"] == i)
        start = int((n["onset_s"][i] + n["vibrato_delay_s"][i] + 0.3) * 250)
        seg = c["cents"][start:fr[-1]]
        if seg.size < 120:
            continue
        seg = seg - seg.mean()
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 8192))
        f = np.fft.rfftfreq(8192, 1 / 250)
        peak = f[np.argmax(spec)]
        assert abs(peak - n["vibrato_rate_hz"][i]) < 0.35
        checked += 1
    assert checked >= 2


def test_vibrato_habits_per_instrument_and_delayed_onset():
    m = chorale_like(48)
    vn = np.concatenate([perform(m, by_name("violin"), seed=s).notes["vibrato_depth_cents"] for s in range(4)])
    cl = np.concatenate([perform(m, by_name("clarinet"), seed=s).notes["vibrato_depth_cents"] for s in range(4)])
    assert (vn > 0).mean() > 0.5
    assert (cl > 0).mean() < 0.15
    p = perform(m, by_name("violin"), seed=9)
    n = p.notes
    long_ = (n["offset_s"] - n["onset_s"] >= 0.8) & (n["vibrato_depth_cents"] > 0)
    assert long_.any()
    assert n["vibrato_delay_s"][long_].min() >= 0.1  # vibrato starts after the attack on long notes
    # and the pitch curve is still at the note's detune right after the onset
    i = int(np.flatnonzero(long_)[0])
    f = int(np.ceil(n["onset_s"][i] * 250)) + 20  # 80 ms in: before the vibrato, after most of a scoop
    assert abs(p.curves["cents"][f] - n["detune_cents"][i]) < 1.0 + 30 * np.exp(-0.08 / 0.04)


def test_winds_breathe_at_phrase_ends():
    m = chorale_like()
    p = perform(m, by_name("oboe"), seed=11)
    n = p.notes
    gaps = n["onset_s"][1:] - n["offset_s"][:-1]
    ends = np.flatnonzero(np.diff(n["phrase"]) > 0)
    assert ends.size >= 3
    assert np.median(gaps[ends]) >= 0.1
    within = np.setdiff1d(np.arange(gaps.size), ends)
    assert np.median(gaps[within]) < np.median(gaps[ends])


def test_articulations_shape_note_lengths():
    m = chorale_like(48)
    lens = {0: [], 1: [], 2: []}
    for s in range(6):
        p = perform(m, by_name("trumpet"), seed=s)
        n = p.notes
        ioi = np.diff(n["onset_s"])
        fill = (n["offset_s"][:-1] - n["onset_s"][:-1]) / ioi
        for a in lens:
            lens[a].extend(fill[(n["articulation"][:-1] == a) & (np.diff(n["phrase"]) == 0)])
    med = {a: np.median(v) for a, v in lens.items() if v}
    assert med[0] > 0.95 and med[1] < med[0] and med[2] < 0.6


def test_too_short_melody_is_rejected():
    m = Melody(key="x", source="x", pitch=[60, 62, 64, 65], onset_ql=[0, 1, 2, 3], duration_ql=[1, 1, 1, 1],
               beat_strength=[1, .25, .5, .25], fermata=[False] * 4)
    with pytest.raises(MelodyTooShortError):
        perform(m, by_name("flute"), seed=0)


def test_save_load_round_trip(tmp_path):
    p = perform(chorale_like(), by_name("horn"), seed=0, transpose=-12)
    p.save(tmp_path / "x.npz")
    q = PerformedPiece.load(tmp_path / "x.npz")
    assert (q.name, q.instrument, q.seed, q.transpose) == (p.name, p.instrument, p.seed, p.transpose)
    for k in p.notes:
        np.testing.assert_array_equal(p.notes[k], q.notes[k])
    for k in p.curves:
        np.testing.assert_array_equal(p.curves[k], q.curves[k])
    seq = q.to_note_sequence()
    assert len(seq) == p.n_notes and seq.instrument == "horn"


def test_midi_file_read_back_by_mido(tmp_path):
    p = perform(chorale_like(), by_name("viola"), seed=0, transpose=-12)
    path = tmp_path / "x.mid"
    write_midi(p.to_tracks(), path, p.duration_s)
    mid = mido.MidiFile(str(path))
    assert mid.ticks_per_beat == TICKS_PER_BEAT
    t, ons, offs, rpn, bends, ccs, program = 0.0, [], [], {}, 0, 0, None
    for msg in mido.merge_tracks(mid.tracks):
        t += mido.tick2second(msg.time, mid.ticks_per_beat, 500000)
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append((t, msg.note, msg.velocity))
        elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            offs.append((t, msg.note))
        elif msg.type == "control_change" and msg.control in (101, 100, 6):
            rpn[msg.control] = msg.value
        elif msg.type == "control_change" and msg.control == 11:
            ccs += 1
        elif msg.type == "pitchwheel":
            bends += 1
        elif msg.type == "program_change":
            program = msg.program
    assert program == by_name("viola").program
    assert rpn[6] == int(BEND_RANGE_SEMITONES)
    assert len(ons) == p.n_notes == len(offs)
    # events go out FLUIDSYNTH_LATENCY_S early so that the sound starts on time
    np.testing.assert_allclose([o[0] for o in ons], p.notes["onset_s"] - FLUIDSYNTH_LATENCY_S, atol=2.6e-4)
    np.testing.assert_array_equal([o[1] for o in ons], p.notes["pitch"])
    np.testing.assert_array_equal([o[2] for o in ons], p.notes["velocity"])
    np.testing.assert_allclose(sorted(o[0] for o in offs), p.notes["offset_s"] - FLUIDSYNTH_LATENCY_S, atol=2.6e-4)
    assert bends > 100 and ccs > 10
    assert abs(mid.length - p.duration_s) < 1e-3


def test_performer_config_limits_length():
    m = chorale_like(80)
    cfg = PerformerConfig(min_duration_s=10, max_duration_s=15)
    p = perform(m, by_name("cello"), seed=0, transpose=-12, config=cfg)
    assert p.notes["offset_s"][-1] <= 15.0 + 1e-6
