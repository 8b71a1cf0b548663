"""Rendering with controllers, exported performances and the soundfont fallback.

Fast tests use a random-weight model folder (the steering is exact arithmetic on its parameters); the
``slow`` ones render with the shipped checkpoints and measure the audio (the issue's "Show" list; the same
figures are printed by ``eval/eval_controllers.py``).
"""
from __future__ import annotations

import argparse
import shutil

import mido
import numpy as np
import pytest

from midi_ddsp.controller_cli import add_controller_args, check_controller_args, stem_names
from midi_ddsp.controller_render import render_midi
from midi_ddsp.errors import MidiDDSPError, MidiReadError
from midi_ddsp.io.midi_export import export_midi
from midi_ddsp.note_level import controllers as nc
from midi_ddsp.note_level.frames import notes_to_frames
from midi_ddsp.note_level.notes import CONTROL_NAMES
from midi_ddsp.sampler import SamplerError, check_sampler, fallback_tracks, find_soundfont

try:
    from midi_ddsp.random_models import write_random_checkpoints
except ImportError:  # before the pipeline split
    from midi_ddsp.pipeline import write_random_checkpoints
from midi_ddsp.pipeline import MidiDDSP

from test_controllers import bend, cc, note, rpn, write

HAVE_SAMPLER = shutil.which("fluidsynth") is not None
try:
    find_soundfont()
except SamplerError:
    HAVE_SAMPLER = False
needs_sampler = pytest.mark.skipif(not HAVE_SAMPLER, reason="fluidsynth or a GM soundfont is not installed")
FR = 250.0


@pytest.fixture(scope="module")
def rmodel(tmp_path_factory, one_thread):
    folder = write_random_checkpoints(tmp_path_factory.mktemp("ctrl_ckpt"), width=16, f0_hidden=16,
                                      reverb_length=4000, seed=0)
    return MidiDDSP.from_pretrained(folder)


def _db(p):
    return 20 * np.log10(np.maximum(p.amplitude[0, :, 0].numpy().astype(np.float64), 1e-4))


def _f0(p):
    return p.f0_hz[0, :, 0].numpy().astype(np.float64)


MELODY = note(69, 0.2, 1.0) + note(72, 1.0, 1.8) + note(71, 2.0, 2.6)


def test_files_without_controllers_render_exactly_as_before(rmodel, tmp_path):
    plain = write(tmp_path / "plain.mid", [(40, 0, MELODY)])
    reset = write(tmp_path / "reset.mid", [(40, 0, MELODY + [cc(0, 1, 0), cc(0, 7, 100), cc(0, 11, 127),
                                                              cc(0, 64, 0), bend(0, 0)] + rpn(0, 2))])
    ref = rmodel.render(plain, seed=3)
    for f in (plain, reset):
        out = render_midi(rmodel, f, seed=3)
        assert np.array_equal(out.mix, ref.mix) and np.array_equal(out.stems, ref.stems)


def test_ignore_controllers_renders_the_notes_only(rmodel, tmp_path):
    f = write(tmp_path / "b.mid", [(40, 0, MELODY + [bend(0.5, 8191), cc(0.3, 11, 20)])])
    plain = write(tmp_path / "plain.mid", [(40, 0, MELODY)])
    assert np.array_equal(render_midi(rmodel, f, seed=1, controllers=False).mix, rmodel.render(plain, seed=1).mix)


def test_pitch_bend_moves_the_f0_by_the_bend(rmodel, tmp_path):
    bends = [bend(0.4 + i / 100, round(8191 * i / 100)) for i in range(101)]
    f = write(tmp_path / "b.mid", [(40, 0, MELODY + rpn(0, 12) + bends)])
    plain = rmodel.render(write(tmp_path / "plain.mid", [(40, 0, MELODY)]), seed=0)
    out = render_midi(rmodel, f, seed=0)
    shift = 12 * np.log2(_f0(out.params[0]) / _f0(plain.params[0]))
    t = np.arange(shift.size) / FR
    ticks_per_s = 1e6 / 500_000 * 960
    ev_t = np.round((0.4 + np.arange(101) / 100) * ticks_per_s) / ticks_per_s  # event times on the tick grid
    k = np.searchsorted(ev_t, t + 1e-9, side="right") - 1
    want = np.where(k >= 0, np.round(8191 * np.maximum(k, 0) / 100) / 8192 * 12, 0.0)
    np.testing.assert_allclose(shift, want, atol=1e-3)  # the sampled f0 plus the bend, frame by frame
    assert shift.max() > 11.9  # a bend far beyond the model's own +-4 semitones


def test_cc11_sets_the_loudness_within_and_across_notes(rmodel, tmp_path):
    ramp = [cc(0.2 + 0.024 * i, 11, 30 + i) for i in range(98)]  # 30 -> 127 over 2.35 s
    f = write(tmp_path / "e.mid", [(40, 0, MELODY + ramp + [cc(0, 11, 30)])])
    plain = rmodel.render(write(tmp_path / "plain.mid", [(40, 0, MELODY)]), seed=0)
    out = render_midi(rmodel, f, seed=0)
    seq = out.performances[0].sequence
    n = out.params[0].n_frames
    frames = notes_to_frames(seq, n, FR)
    ev_cc11 = np.array([30.0] * n)
    t = np.arange(n) / FR
    idx = np.clip(np.floor((t - 0.2) / 0.024 + 1e-6).astype(int), -1, 97)
    ev_cc11 = np.where(t >= 0.2, 30 + np.maximum(idx, 0), 30.0)
    want = nc.expression_gain_db(cc11=ev_cc11)
    got = _db(out.params[0]) - _db(plain.params[0])
    # per note, the mean change equals the requested mean gain (what the generator did + the frame gain)
    np.testing.assert_allclose(nc.note_means(got, frames), nc.note_means(want, frames), atol=0.3)
    # within a note, the change follows the requested curve's shape (the random generator's own response
    # to the new volume control aside)
    k = frames.note_index == 0
    assert np.corrcoef(got[k], want[k])[0, 1] > 0.9
    # the per-note volume controls moved the way of the gain
    vol = CONTROL_NAMES.index("volume")
    assert out.performances[0].controls[0, vol] <= plain.performances[0].controls[0, vol]


def test_cc1_sets_the_vibrato_controls(rmodel, tmp_path):
    f = write(tmp_path / "v.mid", [(40, 0, MELODY + [cc(0, 1, 1), cc(0.95, 1, 127)])])
    out = render_midi(rmodel, f, seed=0)
    plain = rmodel.render(write(tmp_path / "plain.mid", [(40, 0, MELODY)]), seed=0)
    vib = CONTROL_NAMES.index("vibrato")
    v0 = plain.performances[0].controls[:, vib]
    got = out.performances[0].controls[:, vib]
    # note 0 spans the step (max CC1 127): strongest vibrato; notes 1, 2 at 127 too; a file at CC1 1 would be ~0
    np.testing.assert_allclose(got, np.maximum(v0, 1.0))
    f2 = write(tmp_path / "v2.mid", [(40, 0, MELODY + [cc(0, 1, 1)])])
    got2 = render_midi(rmodel, f2, seed=0).performances[0].controls[:, vib]
    np.testing.assert_allclose(got2, v0 * 2 / 127, atol=1e-9)


def test_sustain_lengthens_notes(rmodel, tmp_path):
    f = write(tmp_path / "s.mid", [(40, 0, note(69, 0.2, 0.5) + note(72, 1.0, 1.2) + [cc(0.4, 64, 127), cc(1.6, 64, 0)])])
    out = render_midi(rmodel, f, seed=0)
    offsets = [n.offset_s for n in out.performances[0].sequence]
    assert offsets == pytest.approx([1.0, 1.6])


def test_a_pedalled_piano_track_gains_voices(rmodel, tmp_path):
    """On a chordal program (piano -> strings by pitch) the pedal holds an arpeggio's notes until it lifts,
    before the split into voices: three voices sound together to the pedal's release; a violin track with
    the same notes stays one legato voice, and without controllers the piano is one voice as written."""
    arpeggio = note(60, 0.0, 0.5) + note(64, 0.5, 1.0) + note(67, 1.0, 1.5) + [cc(0.1, 64, 127), cc(2.0, 64, 0)]
    piano = render_midi(rmodel, write(tmp_path / "p.mid", [(0, 0, arpeggio)]), seed=0)
    held = sorted((n.pitch, n.onset_s, n.offset_s) for p in piano.performances for n in p.sequence)
    assert len(piano.performances) == 3
    np.testing.assert_allclose(held, [(60, 0.0, 2.0), (64, 0.5, 2.0), (67, 1.0, 2.0)], atol=1e-6)
    sr = piano.sample_rate                  # all three sound at 1.7-1.9 s
    rms = np.sqrt(np.mean(piano.stems[:, int(1.7 * sr):int(1.9 * sr)].astype(np.float64) ** 2, axis=1))
    assert rms.min() > 0.05 * rms.max() > 0
    violin = render_midi(rmodel, write(tmp_path / "v.mid", [(40, 0, arpeggio)]), seed=0)
    assert len(violin.performances) == 1
    assert [n.offset_s for n in violin.performances[0].sequence] == pytest.approx([0.5, 1.0, 2.0])
    plain = render_midi(rmodel, write(tmp_path / "p2.mid", [(0, 0, arpeggio)]), seed=0, controllers=False)
    assert len(plain.performances) == 1
    # the piano part given to one single-line instrument (program_map or --instrument) is played as that
    # instrument plays: one legato voice, as the violin track
    for kwargs in (dict(program_map={0: "flute"}), dict(instrument="flute")):
        mapped = render_midi(rmodel, tmp_path / "p.mid", seed=0, **kwargs)
        assert len(mapped.performances) == 1 and mapped.performances[0].instrument == "flute"
        assert [n.offset_s for n in mapped.performances[0].sequence] == pytest.approx([0.5, 1.0, 2.0])


def test_exported_loudness_keeps_the_whole_documented_range():
    """The 14-bit loudness lane holds every level from just above -63.5 dB to 0 dB within 0.002 dB (the
    last half CC11 step, -63.5..-63 dB, lives in the fine part under a coarse 0); -63.5 dB and below read
    as out of range."""
    from midi_ddsp.io.midi_export import loudness_to_value, value_to_loudness

    db = np.array([-63.45, -63.2, -63.0, -40.123, -0.3, 0.0])
    np.testing.assert_allclose(value_to_loudness(loudness_to_value(db)), db, atol=0.002)
    assert np.isnan(value_to_loudness(loudness_to_value(np.array([-63.5, -70.0])))).all()


def test_export_reimport_render_round_trip(rmodel, tmp_path):
    src = write(tmp_path / "src.mid", [(40, 0, MELODY + [bend(0.3 + i / 50, -80 * i) for i in range(40)]
                                        + [cc(0.2 + 0.05 * i, 11, 50 + i) for i in range(40)]),
                                       (42, 1, note(48, 0.0, 2.0) + [cc(0.5, 64, 127)])])
    r1 = render_midi(rmodel, src, seed=0)
    path = export_midi(tmp_path / "take.mid", r1.performances, r1.params, FR)
    r2 = render_midi(rmodel, path, seed=5)  # another seed: nothing may be sampled again
    assert len(r2.performances) == len(r1.performances)
    for a, b, pa, pb in zip(r1.performances, r2.performances, r1.params, r2.params):
        assert [(n.pitch, n.velocity, round(n.onset_s, 9), round(n.offset_s, 9)) for n in b.sequence] == \
            [(n.pitch, n.velocity, round(n.onset_s, 9), round(n.offset_s, 9)) for n in a.sequence]
        assert b.instrument == a.instrument
        np.testing.assert_allclose(b.controls, np.clip(a.controls, 0, 1), atol=0.5 / 16383 + 1e-9)
        cents = 1200 * np.abs(np.log2(_f0(pb) / _f0(pa)))
        assert cents.max() < 0.1
        loud = _db(pa) > -63.5
        assert np.abs(_db(pb) - _db(pa))[loud].max() < 0.05
    assert np.corrcoef(r1.mix, r2.mix)[0, 1] > 0.99


def test_cli_options_parse_and_check(tmp_path):
    p = argparse.ArgumentParser()
    add_controller_args(p)
    a = p.parse_args(["--fallback-soundfont"])
    assert a.fallback_soundfont == "auto" and not a.ignore_controllers and a.export_midi is None
    a = p.parse_args(["--ignore-controllers", "--export-midi", str(tmp_path / "x.mid"), "--fallback-soundfont",
                      str(tmp_path / "none.sf2")])
    assert a.ignore_controllers
    with pytest.raises(MidiDDSPError, match="soundfont not found|fluidsynth"):
        check_controller_args(a)
    a = p.parse_args(["--export-midi", str(tmp_path / "x.wav")])
    with pytest.raises(MidiDDSPError, match="must end in .mid"):
        check_controller_args(a)
    a = p.parse_args(["--export-midi", str(tmp_path / "missing" / "x.mid")])
    with pytest.raises(MidiDDSPError, match="does not exist"):
        check_controller_args(a)


def test_sampler_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth on the PATH
    with pytest.raises(SamplerError) as e:
        check_sampler()
    assert "fluidsynth" in str(e.value) and "\n" not in str(e.value)


def test_missing_soundfont_file_is_one_line(tmp_path):
    with pytest.raises(SamplerError, match="soundfont not found"):
        find_soundfont(tmp_path / "nope.sf2")


def test_fallback_track_selection(tmp_path):
    f = write(tmp_path / "song.mid", [(40, 0, note(72, 0, 1)), (0, 1, note(60, 0, 1)), (0, 9, note(36, 0, 0.1)),
                                      (65, 2, note(70, 0, 1)), (48, 3, note(60, 0, 1))])
    got = [(t.index, t.program, t.is_drum) for t in fallback_tracks(f)]
    assert got == [(1, 0, False), (2, 0, True), (4, 48, False)]  # piano, drums, string ensemble; not violin/sax
    assert [t.index for t in fallback_tracks(f, instrument_override="cello")] == [2]
    assert [t.index for t in fallback_tracks(f, program_map={0: "flute"})] == [2, 4]


@needs_sampler
def test_fallback_renders_drums_aligned_and_mixed(rmodel, tmp_path):
    hits = [0.5, 1.0, 1.5]
    drums = sum((note(38, t, t + 0.1, 120) for t in hits), [])
    f = write(tmp_path / "d.mid", [(40, 0, MELODY), (0, 1, note(60, 0.2, 2.0)), (0, 9, drums)])
    out = render_midi(rmodel, f, seed=0, fallback_soundfont="auto")
    names = stem_names(out)
    assert [n for n, _ in names] == ["track 1 (Violin)", "track 2 (Acoustic Grand Piano) (soundfont)",
                                     "track 3 (drums) (soundfont)"]
    assert names[2][1] == "soundfont" and len(out.performances) == 1
    np.testing.assert_allclose(out.stems.sum(0), out.mix, atol=1e-5)
    d = np.abs(out.stems[2])
    sr = out.sample_rate
    assert d.max() > 0.01
    for t in hits:  # each hit reaches -20 dB of its peak within 10 ms of its MIDI time
        seg = d[int((t - 0.05) * sr):int((t + 0.1) * sr)]
        first = np.argmax(seg >= 0.1 * seg.max()) / sr - 0.05
        assert abs(first) < 0.010
    assert np.abs(d[:int(0.45 * sr)]).max() < 1e-4  # nothing before the first hit
    # without the option: drums skipped and piano played by the models, as before
    plain = render_midi(rmodel, f, seed=0)
    assert len(plain.performances) == 2 and plain.stems.shape[0] == 2


@needs_sampler
def test_drum_only_file_renders_with_fallback(rmodel, tmp_path):
    f = write(tmp_path / "d.mid", [(0, 9, note(36, 0.1, 0.2) + note(42, 0.3, 0.4))])
    with pytest.raises(MidiReadError):
        render_midi(rmodel, f, seed=0)
    out = render_midi(rmodel, f, seed=0, fallback_soundfont="auto")
    assert out.performances == [] and out.stems.shape[0] == 1 and np.abs(out.mix).max() > 0.01


# ------------------------------------------------------------------------------ the shipped model (slow)
@pytest.fixture(scope="module")
def shipped(one_thread):
    from midi_ddsp.pipeline import DEFAULT_CHECKPOINTS

    if not (DEFAULT_CHECKPOINTS / "generator.safetensors").is_file():
        pytest.skip("no shipped checkpoints")
    return MidiDDSP.from_pretrained()


def _tracked(x, sr):
    from midi_ddsp.synthesis.ddsp.features import estimate_f0

    f0, conf = estimate_f0(np.asarray(x, np.float32), sr, FR, fmin=150.0, fmax=1500.0)
    return 69 + 12 * np.log2(np.maximum(f0, 1e-3) / 440.0), conf


@pytest.mark.slow
def test_shipped_violin_bend_rises_200_cents(shipped, tmp_path):
    f = write(tmp_path / "b.mid", [(40, 0, note(69, 0.2, 3.0) + [bend(1 + i / 100, round(8191 * i / 100))
                                                                for i in range(101)])])
    out = render_midi(shipped, f, seed=0, reverb=False)
    st, conf = _tracked(out.mix, out.sample_rate)
    t = np.arange(st.size) / FR
    rise = 100 * (np.median(st[(t > 2.1) & (t < 2.9) & (conf > 0.5)]) - np.median(st[(t > 0.5) & (t < 0.95) & (conf > 0.5)]))
    assert rise == pytest.approx(200, abs=30)


@pytest.mark.slow
def test_shipped_cc11_ramp_raises_loudness(shipped, tmp_path):
    import torch

    from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness

    ramp = [cc(0.5 + 0.03 * i, 11, round(30 + 0.97 * i)) for i in range(101)]
    f = write(tmp_path / "e.mid", [(40, 0, note(69, 0.2, 4.0) + ramp + [cc(0, 11, 30)])])
    out = render_midi(shipped, f, seed=0, reverb=False)
    loud = a_weighted_loudness(torch.from_numpy(out.mix)[None], out.sample_rate, FR)[0, :, 0].numpy()
    t = np.arange(loud.size) / FR
    ramp_t = (t >= 0.5) & (t <= 3.5)
    rise = loud[(t > 3.2) & (t <= 3.5)].mean() - loud[(t >= 0.5) & (t < 0.8)].mean()
    assert rise >= 8.0
    assert np.corrcoef(t[ramp_t], loud[ramp_t])[0, 1] >= 0.9


@pytest.mark.slow
def test_shipped_cc1_step_doubles_vibrato(shipped, tmp_path):
    from midi_ddsp.note_level.expression import vibrato_depth

    f = write(tmp_path / "v.mid", [(40, 0, note(69, 0.2, 6.0) + [cc(0, 1, 0), cc(3.0, 1, 127)])])
    out = render_midi(shipped, f, seed=0, reverb=False)
    st, conf = _tracked(out.mix, out.sample_rate)
    dev = np.where(conf > 0.3, st - 69, 0.0)
    depth = vibrato_depth(dev, np.array([175, 825]), np.array([725, 1375]), FR)
    assert depth[1] >= 2 * depth[0] and depth[1] > 0.05
