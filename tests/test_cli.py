"""The ``midi-ddsp`` command: render / transfer / instruments on small files the tests write.

Commands run in-process through ``midi_ddsp.cli.main(argv)`` (one subprocess test checks the installed
entry point). Every bad input must give exit code 2, exactly one ``midi-ddsp: error:`` line on stderr and no
output file (not even a temporary one).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from midi_ddsp.cli import main
from midi_ddsp.note_level import Note, NoteSequence, Performance, to_csv

from pipeline_helpers import (BASS, MELODY, checkpoint_dir, model, two_track_midi,  # noqa: F401
                              write_midi)

pytestmark = pytest.mark.usefixtures("one_thread")
SR, HOP = 16000, 64


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def render(capsys, checkpoint_dir, *argv):
    return run(capsys, "render", *argv, "--checkpoint", checkpoint_dir)


# ------------------------------------------------------------------------------------------- render
def test_multitrack_render_mix_length_and_stems(capsys, tmp_path, checkpoint_dir, model):
    mid = two_track_midi(tmp_path / "two.mid")
    code, out, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "mix.wav", "--stems", tmp_path / "stems",
                            "--seed", 1)
    assert code == 0, err
    assert "wrote" in out and "model load" in out
    mix, sr = sf.read(tmp_path / "mix.wav", dtype="float32")
    assert sr == SR
    last_offset = max(e for _, _, e in MELODY + BASS)
    tail = model.tail_s(["violin", "cello"])
    assert len(mix) == int(np.ceil((last_offset + tail) * 250)) * HOP
    stems = sorted((tmp_path / "stems").iterdir())
    assert [p.name for p in stems] == ["01_track_1_Violin_violin.wav", "02_track_2_Cello_cello.wav"]
    arrays = [sf.read(p, dtype="float32")[0] for p in stems]
    assert all(len(a) == len(mix) for a in arrays)
    np.testing.assert_allclose(arrays[0] + arrays[1], mix, atol=3 / 32768)  # 16-bit rounding of three files
    assert np.max(np.abs(mix)) <= 0.99 + 1 / 32768


def test_exported_performance_reimported_renders_the_same_audio(capsys, tmp_path, checkpoint_dir):
    mid = two_track_midi(tmp_path / "two.mid")
    for fmt in ("csv", "json"):
        perf_file = tmp_path / f"perf.{fmt}"
        code, _, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "a.wav", "--export-performance",
                              perf_file, "--seed", 11)
        assert code == 0, err
        code, _, err = render(capsys, checkpoint_dir, "--performance", perf_file, "-o", tmp_path / "b.wav",
                              "--seed", 11)
        assert code == 0, err
        a, b = sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0]
        assert np.array_equal(a, b)


def test_edited_performance_changes_only_what_was_edited(capsys, tmp_path, checkpoint_dir):
    mid = two_track_midi(tmp_path / "two.mid")
    perf_file = tmp_path / "perf.csv"
    render(capsys, checkpoint_dir, mid, "-o", tmp_path / "a.wav", "--export-performance", perf_file)
    lines = perf_file.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("volume")] = "0.95"
    perf_file.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    code, _, err = render(capsys, checkpoint_dir, "--performance", perf_file, "-o", tmp_path / "b.wav")
    assert code == 0, err
    assert not np.array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0])


def test_keep_performance_keeps_the_controls_of_the_notes_an_edit_left_alone(capsys, tmp_path, checkpoint_dir):
    """Render, export the performance, edit one note of the MIDI file, re-render with ``--keep-performance``:
    the exported controls of every other note are those of the first render, the edited note's are new."""
    from midi_ddsp.io.performance_files import load_performances

    first = write_midi(tmp_path / "first.mid", [(40, False, MELODY), (42, False, BASS)])
    edited_melody = [(p + 3, s, e) if i == 2 else (p, s, e) for i, (p, s, e) in enumerate(MELODY)]
    edited = write_midi(tmp_path / "edited.mid", [(40, False, edited_melody), (42, False, BASS)])
    code, _, err = render(capsys, checkpoint_dir, first, "-o", tmp_path / "a.wav", "--seed", 4,
                          "--export-performance", tmp_path / "a.csv")
    assert code == 0, err
    for keep, name in ((True, "b"), (False, "c")):
        extra = ["--keep-performance", tmp_path / "a.csv"] if keep else []
        code, _, err = render(capsys, checkpoint_dir, edited, "-o", tmp_path / f"{name}.wav", "--seed", 4,
                              "--export-performance", tmp_path / f"{name}.csv", *extra)
        assert code == 0, err
        assert ("1 of 6 notes performed anew" in err) == keep
    a, b, c = (load_performances(tmp_path / f"{x}.csv") for x in "abc")
    assert np.array_equal(a[1].controls, b[1].controls)  # the bass: untouched
    same = np.all(a[0].controls == b[0].controls, axis=1)
    assert list(same) == [True, True, False, True]
    assert not np.all(a[0].controls == c[0].controls, axis=1)[[1, 3]].all()  # without it, neighbours move
    code, _, err = render(capsys, checkpoint_dir, first, "-o", tmp_path / "d.wav", "--instrument", "flute",
                          "--keep-performance", tmp_path / "a.csv")  # other instruments: nothing matches
    assert code == 0 and "no note matches the earlier performance" in err


def test_fixed_gain_repeats_the_printed_gain_and_scales_the_raw_output(capsys, tmp_path, checkpoint_dir):
    """A normalised render prints its gain over the raw output; ``--gain-db`` with that number writes the same
    file (within the printed 0.01 dB and 16-bit rounding), and ``--gain-db -6`` is the raw render at half
    amplitude."""
    import re

    mid = two_track_midi(tmp_path / "two.mid")
    code, out, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "norm.wav", "--seed", 3)
    assert code == 0, err
    gain = float(re.search(r"gain ([+-][0-9.]+) dB", out).group(1))
    code, out, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "fixed.wav", "--seed", 3, "--gain-db", gain)
    assert code == 0, err
    assert f"gain {gain:+.2f} dB (fixed)" in out
    norm, fixed = sf.read(tmp_path / "norm.wav")[0], sf.read(tmp_path / "fixed.wav")[0]
    assert np.abs(fixed - norm).max() <= 0.0012 * np.abs(norm).max() + 2 / 32768
    render(capsys, checkpoint_dir, mid, "-o", tmp_path / "raw.wav", "--seed", 3, "--no-normalize")
    render(capsys, checkpoint_dir, mid, "-o", tmp_path / "half.wav", "--seed", 3, "--gain-db", -20 * np.log10(2))
    raw, half = sf.read(tmp_path / "raw.wav")[0], sf.read(tmp_path / "half.wav")[0]
    np.testing.assert_allclose(half, raw / 2, atol=1.5 / 32768)


def test_dry_flag_renders_the_dry_synthesizer_output(capsys, tmp_path, checkpoint_dir, model):
    mid = two_track_midi(tmp_path / "two.mid")
    code, _, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "dry.wav", "--dry", "--seed", 2,
                          "--no-normalize")  # the API's raw level
    assert code == 0, err
    dry = sf.read(tmp_path / "dry.wav", dtype="float32")[0]
    api_dry = model.render(mid, seed=2, reverb=False).mix
    api_wet = model.render(mid, seed=2, reverb=True).mix
    assert np.max(np.abs(dry - api_dry)) <= 1 / 32768
    assert np.max(np.abs(dry - api_wet)) > 1e-3


def test_sample_rate_option_resamples(capsys, tmp_path, checkpoint_dir):
    mid = two_track_midi(tmp_path / "two.mid")
    render(capsys, checkpoint_dir, mid, "-o", tmp_path / "a.wav")
    code, _, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "b.wav", "--sample-rate", 44100)
    assert code == 0, err
    a, b = sf.info(str(tmp_path / "a.wav")), sf.info(str(tmp_path / "b.wav"))
    assert b.samplerate == 44100
    assert abs(b.frames - a.frames * 44100 / 16000) <= 2


def test_instrument_pitch_offset_and_speed(capsys, tmp_path, checkpoint_dir):
    mid = two_track_midi(tmp_path / "two.mid")
    code, _, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "a.wav", "--instrument", "flute",
                          "--pitch-offset", 12, "--speed", 2, "--export-performance", tmp_path / "p.json",
                          "--temperature", 0)
    assert code == 0, err
    text = (tmp_path / "p.json").read_text()
    assert text.count('"instrument": "flute"') == 2 and '"pitch": 84' in text  # 72 + 12
    assert '"offset_s": 1.2' in text  # 2.4 s / 2


def test_extreme_notes_render_with_warnings(capsys, tmp_path, checkpoint_dir):
    mid = write_midi(tmp_path / "x.mid", [(73, False, [(30, 0.0, 0.02), (108, 0.1, 12.1), (72, 12.2, 12.4)])])
    code, _, err = render(capsys, checkpoint_dir, mid, "-o", tmp_path / "x.wav")
    assert code == 0, err
    assert "midi-ddsp: warning:" in err and "C8 (108)" in err and "F#1 (30)" in err
    audio, _ = sf.read(tmp_path / "x.wav")
    assert len(audio) / SR > 12.4 and np.all(np.isfinite(audio))


# ------------------------------------------------------------------------------------------ bad input
def _bad_csv(tmp_path, kind):
    seq = NoteSequence((Note(60, 0.0, 0.5), Note(62, 0.5, 1.0)), "violin", "v")
    text = to_csv(Performance(seq, np.full((2, 6), 0.5)))
    lines = text.splitlines()
    if kind == "missing column":
        lines = [",".join(c for c in line.split(",")[:-1]) for line in lines]
    elif kind == "non-numeric":
        lines[1] = lines[1].replace(",60,", ",sixty,")
    elif kind == "negative duration":
        row = lines[1].split(",")
        row[4], row[5] = "0.5", "0.1"
        lines[1] = ",".join(row)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _truncated(tmp_path):
    data = two_track_midi(tmp_path / "full.mid").read_bytes()
    path = tmp_path / "cut.mid"
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_RENDERS = {
    "missing file": (lambda t: [t / "nope.mid", "-o", t / "o.wav"], "no such file"),
    "not a MIDI file": (lambda t: [_write(t / "text.mid", b"hello, not midi"), "-o", t / "o.wav"], "not a MIDI file"),
    "truncated MIDI": (lambda t: [_truncated(t), "-o", t / "o.wav"], "truncated"),
    "corrupt MIDI": (lambda t: [_write(t / "c.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04"
                                                      b"\xff\xff\xff\xff"), "-o", t / "o.wav"], "corrupt"),
    "empty MIDI": (lambda t: [write_midi(t / "e.mid", [(40, False, [])]), "-o", t / "o.wav"], "no notes"),
    "drum-only MIDI": (lambda t: [write_midi(t / "d.mid", [(0, True, [(36, 0, 0.5)])]), "-o", t / "o.wav"], "drum"),
    "unknown instrument": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav", "--instrument", "banjo"],
                           "unknown instrument 'banjo'"),
    "missing output folder": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "no" / "o.wav"], "does not exist"),
    "output is a folder": (lambda t: [two_track_midi(t / "m.mid"), "-o", _mkdir(t / "dir.wav")], "is a folder"),
    "unwritable stems folder": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav", "--stems",
                                           _write(t / "file", b"x")], "not a folder"),
    "csv missing column": (lambda t: ["--performance", _bad_csv(t, "missing column"), "-o", t / "o.wav"],
                           "missing column attack"),
    "csv non-numeric": (lambda t: ["--performance", _bad_csv(t, "non-numeric"), "-o", t / "o.wav"], "not a number"),
    "csv negative duration": (lambda t: ["--performance", _bad_csv(t, "negative duration"), "-o", t / "o.wav"],
                              "negative duration"),
    "bad speed": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav", "--speed", "0"], "--speed"),
    "gain with no-normalize": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav", "--gain-db", "3",
                                          "--no-normalize"], "exclude each other"),
    "absurd gain": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav", "--gain-db", "1e9"], "--gain-db"),
    "bad expression temperature": (lambda t: [two_track_midi(t / "m.mid"), "-o", t / "o.wav",
                                              "--expression-temperature", "-1"], "--expression-temperature"),
    "keep with performance": (lambda t: ["--performance", _bad_csv(t, "ok"), "--keep-performance",
                                         _bad_csv(t, "ok"), "-o", t / "o.wav"], "goes with a MIDI file"),
    "keep file missing": (lambda t: [two_track_midi(t / "m.mid"), "--keep-performance", t / "no.csv", "-o",
                                     t / "o.wav"], "no such file"),
}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("case", list(BAD_RENDERS))
def test_bad_render_input_is_one_line_exit_2_no_output(case, capsys, tmp_path, checkpoint_dir):
    make, message = BAD_RENDERS[case]
    argv = make(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    code, out, err = render(capsys, checkpoint_dir, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("midi-ddsp: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "o.wav").exists()
    assert {p for p in tmp_path.rglob("*")} == before  # nothing written, no temporary files left


def test_bad_checkpoint_is_one_line_exit_2(capsys, tmp_path):
    mid = two_track_midi(tmp_path / "m.mid")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "generator.safetensors").write_bytes(b"garbage")
    for folder in (tmp_path / "missing", tmp_path / "ck"):
        code, _, err = run(capsys, "render", mid, "-o", tmp_path / "o.wav", "--checkpoint", folder)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "midi-ddsp: error:" in err
    assert not (tmp_path / "o.wav").exists()


# -------------------------------------------------------------------------------- transfer, instruments
def test_transfer_and_its_bad_inputs(capsys, tmp_path, checkpoint_dir):
    t = np.arange(SR * 2) / SR
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), SR)
    code, out, err = run(capsys, "transfer", tmp_path / "in.wav", "-o", tmp_path / "out.wav", "--instrument",
                         "trumpet", "--octave-shift", "-1", "--loudness-shift", "3", "--checkpoint", checkpoint_dir)
    assert code == 0, err
    y, sr = sf.read(tmp_path / "out.wav")
    assert sr == SR and len(y) == 2 * SR
    for argv, message in (
        (["transfer", tmp_path / "none.wav", "-o", tmp_path / "x.wav", "--instrument", "flute"], "not found"),
        (["transfer", _write(tmp_path / "bad.wav", b"RIFF junk"), "-o", tmp_path / "x.wav", "--instrument", "flute"],
         "not a readable audio file"),
        (["transfer", tmp_path / "in.wav", "-o", tmp_path / "x.wav", "--instrument", "kazoo"], "unknown instrument"),
    ):
        code, _, err = run(capsys, *argv, "--checkpoint", checkpoint_dir)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "x.wav").exists()


def test_instruments_lists_the_models_instruments_with_ranges(capsys, checkpoint_dir):
    code, out, err = run(capsys, "instruments", "--checkpoint", checkpoint_dir)
    assert code == 0, err
    assert "violin" in out and "G3-E7 (MIDI 55-100)" in out and "tuba" in out
    assert len([line for line in out.splitlines() if "(MIDI " in line]) == 13


def test_installed_entry_point_exit_codes(tmp_path, checkpoint_dir):
    cmd = [sys.executable, "-m", "midi_ddsp.cli", "render", str(tmp_path / "missing.mid"), "-o",
           str(tmp_path / "o.wav"), "--checkpoint", str(checkpoint_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"midi-ddsp: error: {tmp_path / 'missing.mid'}: no such file"]
    helped = subprocess.run([sys.executable, "-m", "midi_ddsp.cli", "render", "--help"], capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "--export-performance" in helped.stdout and "--dry" in helped.stdout
