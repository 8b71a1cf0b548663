"""``midi-ddsp analyze``: recording -> performance file -> ``render --performance``, the Python API, and bad input.

A random-init model folder (:func:`midi_ddsp.random_models.write_random_checkpoints`) measures the controls:
its numbers mean nothing, but the file format, the notes (found without any model) and the round trip are
checked exactly. Bad input must give exit code 2, one ``midi-ddsp: error:`` line and no output file.
"""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from midi_ddsp.cli import main
from midi_ddsp.note_level.serialization import CSV_COLUMNS, from_csv, from_json

from pipeline_helpers import checkpoint_dir, model  # noqa: F401
from transcription_signals import add_noise, add_reverb, melody

pytestmark = pytest.mark.usefixtures("one_thread")
NOTES = [(67, 0.3, 0.8), (69, 0.8, 1.3), (71, 1.4, 1.9), (71, 1.95, 2.4), (74, 2.4, 3.2)]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def take(tmp_path_factory):
    """A stereo 44.1 kHz FLAC of NOTES with vibrato, a little noise and reverb."""
    y = add_reverb(add_noise(melody(NOTES, 44100, vibrato_cents=25, release_s=0.03), 40.0), 44100, wet=0.2)
    path = tmp_path_factory.mktemp("rec") / "take.flac"
    sf.write(path, np.stack([y, 0.8 * y], 1), 44100)
    return path


def _assert_notes(perf, tol_s=0.05):
    seq = perf.sequence
    assert [n.pitch for n in seq] == [p for p, _, _ in NOTES]
    assert np.all(np.abs(seq.onsets_s - np.array([a for _, a, _ in NOTES])) <= tol_s)


def test_analyze_writes_a_performance_that_render_reads(capsys, tmp_path, checkpoint_dir, take):
    perf_csv, mid = tmp_path / "take.csv", tmp_path / "take.mid"
    code, out, err = run(capsys, "analyze", take, "-o", perf_csv, "--instrument", "violin", "--midi-out", mid,
                         "--checkpoint", checkpoint_dir)
    assert code == 0, err
    assert "wrote" in out and "5 notes" in out and "warning" not in err
    text = perf_csv.read_text()
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)  # the render --export-performance format
    (perf,) = from_csv(text)
    _assert_notes(perf)
    assert perf.instrument == "violin" and perf.controls.shape == (5, 6) and np.isfinite(perf.controls).all()
    # the MIDI file holds the same notes (1 ms grid) and the violin's program
    pm = pretty_midi.PrettyMIDI(str(mid))
    (track,) = [t for t in pm.instruments if t.notes]
    assert track.program == 40 and [n.pitch for n in track.notes] == [n.pitch for n in perf.sequence]
    np.testing.assert_allclose([n.start for n in track.notes], perf.sequence.onsets_s, atol=1e-3)
    # re-render the performance, an edited copy, and the MIDI file
    code, out, err = run(capsys, "render", "--performance", perf_csv, "-o", tmp_path / "re.wav",
                         "--checkpoint", checkpoint_dir, "--dry")
    assert code == 0, err
    audio, sr = sf.read(tmp_path / "re.wav")
    assert sr == 16000 and len(audio) / sr >= perf.sequence.offsets_s[-1]
    edited = tmp_path / "edited.csv"
    edited.write_text(text.replace(",74,", ",76,"))
    code, _, err = run(capsys, "render", "--performance", edited, "-o", tmp_path / "ed.wav", "--checkpoint",
                       checkpoint_dir, "--dry")
    assert code == 0, err
    code, _, err = run(capsys, "render", mid, "-o", tmp_path / "mid.wav", "--checkpoint", checkpoint_dir, "--dry")
    assert code == 0, err


def test_analyze_json_matches_the_python_api(capsys, tmp_path, checkpoint_dir, model, take):
    code, _, err = run(capsys, "analyze", take, "-o", tmp_path / "p.json", "--instrument", "violin",
                       "--checkpoint", checkpoint_dir)
    assert code == 0, err
    (from_file,) = from_json((tmp_path / "p.json").read_text())
    audio, sr = sf.read(take, dtype="float32", always_2d=True)
    perf = model.analyze_recording(audio.T, sr, "violin")  # [channels, samples]
    _assert_notes(perf)
    assert [(n.pitch, n.onset_s, n.offset_s) for n in perf.sequence] == \
        [(n.pitch, n.onset_s, n.offset_s) for n in from_file.sequence]
    np.testing.assert_allclose(perf.controls, from_file.controls, rtol=1e-5, atol=1e-6)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _wav(path, audio, sr=16000):
    sf.write(path, np.asarray(audio, np.float32), sr)
    return path


def test_bad_recordings_and_arguments_are_one_line_exit_2_no_output(capsys, tmp_path, checkpoint_dir, take):
    rng = np.random.default_rng(0)
    cases = [
        (tmp_path / "missing.wav", "violin", "p.csv", "not found"),
        (_write(tmp_path / "junk.wav", b"RIFF not audio at all"), "violin", "p.csv", "not a readable audio"),
        (_write(tmp_path / "notes.txt", b"67 0.3 0.8\n"), "violin", "p.csv", "not a readable audio"),
        (_wav(tmp_path / "short.wav", melody([(69, 0.0, 0.1)], 16000, tail_s=0.05)), "violin", "p.csv", "too short"),
        (_wav(tmp_path / "silent.wav", np.zeros(32000)), "violin", "p.csv", "silent"),
        (_wav(tmp_path / "noise.wav", 0.3 * rng.standard_normal(32000)), "violin", "p.csv", "no pitched notes"),
        (take, "kazoo", "p.csv", "unknown instrument"),
        (take, "violin", "p.txt", "must end in"),
        (take, "violin", "nowhere/p.csv", "does not exist"),
    ]
    for audio, inst, out, match in cases:
        code, stdout, err = run(capsys, "analyze", audio, "-o", tmp_path / out, "--instrument", inst,
                                "--checkpoint", checkpoint_dir)
        assert code == 2, (audio, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("midi-ddsp: error:") and match in lines[0], (audio, err)
    code, _, err = run(capsys, "analyze", take, "-o", tmp_path / "p.csv", "--instrument", "violin",
                       "--midi-out", tmp_path / "p.wav", "--checkpoint", checkpoint_dir)
    assert code == 2 and "--midi-out" in err
    code, _, err = run(capsys, "analyze", take, "-o", tmp_path / "p.csv", "--instrument", "violin",
                       "--checkpoint", tmp_path / "no_model")
    assert code == 2 and len(err.strip().splitlines()) == 1
    written = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in written if n.startswith("p.") or n.endswith(".tmp")], written


def test_noisy_or_polyphonic_recordings_give_a_warning_line(capsys, tmp_path, checkpoint_dir):
    y = melody(NOTES, 16000)
    lower = melody([(p - 4, a, b) for p, a, b in NOTES], 16000, seed=3)
    for name, audio in (("noisy", add_noise(y, 15.0)), ("poly", y + lower)):
        code, out, err = run(capsys, "analyze", _wav(tmp_path / f"{name}.wav", audio), "-o",
                             tmp_path / f"{name}.csv", "--instrument", "violin", "--checkpoint", checkpoint_dir)
        assert code == 0, err
        assert err.count("midi-ddsp: warning:") >= 1 and "error" not in err, err
        assert (tmp_path / f"{name}.csv").is_file()
