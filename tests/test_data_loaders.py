"""Loaders for real data (URMP layout, wav + mid pairs) and the cache's handling of bad files.

Fixtures are rendered inside the tests with FluidSynth (the only offline source of instrument audio).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from midi_ddsp.data.loaders import pair_pieces, read_urmp_notes, urmp_pieces
from midi_ddsp.data.render import renderer_available

SR = 16000
needs_renderer = pytest.mark.skipif(not renderer_available(),
                                    reason="fluidsynth + a GM soundfont are needed "
                                           "(apt-get install fluidsynth fluid-soundfont-gm)")


def _melody(seed: int, n: int = 16):
    from midi_ddsp.data.corpus_sources import Melody

    rng = np.random.default_rng(seed)
    pitch = (67 + np.cumsum(rng.choice([-4, -3, -2, 2, 3, 4, 5, -5], n))).clip(62, 84).tolist()
    dur = rng.choice([0.5, 1.0, 1.5], n).tolist()
    onset = np.concatenate([[0], np.cumsum(dur)[:-1]]).tolist()
    return Melody(key=f"m{seed}#0", source="m", pitch=pitch, onset_ql=onset, duration_ql=dur,
                  beat_strength=[0.5] * n, fermata=[False] * n, seconds_per_ql=0.5)


def _performance(seed: int, instrument: str = "flute"):
    from midi_ddsp.data.performer import PerformerConfig, perform
    from midi_ddsp.data.render import render_tracks
    from midi_ddsp.instruments import by_name

    p = perform(_melody(seed), by_name(instrument), seed=seed,
                config=PerformerConfig(min_duration_s=6, max_duration_s=9, shortest_piece_s=5))
    audio = render_tracks(p.to_tracks(), p.duration_s, SR)
    return p, audio


def _write_mid(path, pitch, onset, offset, velocity, instrument="flute"):
    from midi_ddsp.io.midi import write_midi
    from midi_ddsp.note_level.notes import Note, NoteSequence

    seq = NoteSequence([Note(int(a), float(b), float(c), int(d), instrument)
                        for a, b, c, d in zip(pitch, onset, offset, velocity)], instrument=instrument)
    write_midi([seq], path)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    p, audio = _performance(1)
    n = p.notes
    notes = (n["pitch"], n["onset_s"], n["offset_s"], n["velocity"])
    for name in ("good", "corrupt", "silent", "short", "rate", "overrun", "shifted", "wrongnotes"):
        if name == "shifted":
            _write_mid(d / f"{name}.mid", n["pitch"], n["onset_s"] + 0.6, n["offset_s"] + 0.6, n["velocity"])
        elif name == "wrongnotes":
            _write_mid(d / f"{name}.mid", n["pitch"] + 5, n["onset_s"], n["offset_s"], n["velocity"])
        else:
            _write_mid(d / f"{name}.mid", *notes)
    sf.write(str(d / "good.wav"), audio, SR, subtype="PCM_16")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 8)
    sf.write(str(d / "silent.wav"), np.zeros_like(audio), SR, subtype="PCM_16")
    sf.write(str(d / "short.wav"), audio[: SR], SR, subtype="PCM_16")
    sf.write(str(d / "rate.wav"), audio, 22050, subtype="PCM_16")  # header says 22.05 kHz
    sf.write(str(d / "overrun.wav"), audio[: audio.size // 2], SR, subtype="PCM_16")
    sf.write(str(d / "shifted.wav"), audio, SR, subtype="PCM_16")
    sf.write(str(d / "wrongnotes.wav"), audio, SR, subtype="PCM_16")
    sf.write(str(d / "nomidi.wav"), audio, SR, subtype="PCM_16")
    sf.write(str(d / "badmidi.wav"), audio, SR, subtype="PCM_16")
    (d / "badmidi.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return d


@needs_renderer
def test_pair_loader_reports_annotation_problems(pairs_dir):
    pieces, problems = pair_pieces(pairs_dir)
    ids = {p.id for p in pieces}
    assert {"good", "corrupt", "silent", "short", "rate", "overrun", "shifted", "wrongnotes"} <= ids
    reasons = {p.split("/")[-1]: r for p, r in problems}
    assert "no matching .mid" in reasons["nomidi.wav"]
    assert "bad MIDI" in reasons["badmidi.wav"]
    good = next(p for p in pieces if p.id == "good")
    assert good.instrument == "flute" and good.n_notes > 5


@needs_renderer
def test_bad_files_are_skipped_with_reasons_not_fatal(pairs_dir, tmp_path):
    from midi_ddsp.data.cache import CacheConfig, cache_features

    cfg = CacheConfig(source="pairs", source_dir=str(pairs_dir), out_dir=str(tmp_path / "cache"), n_workers=1, sample_rate=SR,
                      progress=False)
    summary = cache_features(cfg)
    man = {e["id"]: e for e in json.loads((tmp_path / "cache" / "manifest.json").read_text())["pieces"]}
    assert man["good"]["status"] == "ok", man["good"]
    expect = {"corrupt": "corrupt", "silent": "silent", "short": "too short", "rate": "wrong sample rate",
              "overrun": "past the end", "shifted": "misaligned", "wrongnotes": "misaligned",
              "nomidi": "no matching", "badmidi": "bad MIDI"}
    for k, word in expect.items():
        assert man[k]["status"] == "skipped", (k, man[k])
        assert word in man[k]["reason"], (k, man[k]["reason"])
    assert summary["n_ok"] == 1 and summary["n_skipped"] == len(expect)
    # the notes were written 600 ms late: the audio matches them best about 600 ms earlier
    import re

    lag_ms = float(re.search(r"best ([+-]\d+) ms away", man["shifted"]["reason"]).group(1))
    assert -650 <= lag_ms <= -500


@needs_renderer
def test_resample_option_accepts_other_rates(pairs_dir, tmp_path):
    from midi_ddsp.data.cache import CacheConfig, audio_path, cache_features, load_manifest

    # only the 22.05 kHz file and the good one
    d = tmp_path / "two"
    d.mkdir()
    for n in ("good", "rate"):
        for ext in (".wav", ".mid"):
            (d / f"{n}{ext}").write_bytes((pairs_dir / f"{n}{ext}").read_bytes())
    cfg = CacheConfig(source="pairs", source_dir=str(d), out_dir=str(tmp_path / "c"), n_workers=1, sample_rate=SR,
                      progress=False, resample=True)
    cache_features(cfg)
    entries = {e["id"]: e for e in load_manifest(tmp_path / "c", ok_only=False)}
    assert entries["good"]["status"] == "ok"
    # the 22.05 kHz header makes the audio 16/22.05 as long: the notes then overrun -> reported
    assert entries["rate"]["status"] == "skipped" and "past the end" in entries["rate"]["reason"]
    info = sf.info(str(audio_path(tmp_path / "c", entries["good"])))
    assert info.samplerate == SR


def test_read_urmp_notes_formats(tmp_path):
    f = tmp_path / "Notes_1_vn_01_X.txt"
    f.write_text("0.5\t67.02\t0.4\n1.0  440.0  0.5\n\n1.6,62,0.3\n")
    pitch, on, off = read_urmp_notes(f)
    np.testing.assert_array_equal(pitch, [67, 69, 62])
    np.testing.assert_allclose(on, [0.5, 1.0, 1.6])
    np.testing.assert_allclose(off, [0.9, 1.5, 1.9])
    bad = tmp_path / "Notes_bad.txt"
    bad.write_text("0.5 67\n")
    with pytest.raises(ValueError):
        read_urmp_notes(bad)


@needs_renderer
def test_urmp_layout_end_to_end(tmp_path):
    from midi_ddsp.data.cache import CacheConfig, cache_features, load_features, load_manifest

    piece = tmp_path / "urmp" / "01_Test_fl_tpt"
    piece.mkdir(parents=True)
    for track, inst, abbr, seed in ((1, "flute", "fl", 3), (2, "trumpet", "tpt", 4)):
        p, audio = _performance(seed, inst)
        stem = f"{track}_{abbr}_01_Test"
        sf.write(str(piece / f"AuSep_{stem}.wav"), audio, SR, subtype="PCM_16")
        n = p.notes
        lines = [f"{a:.4f}\t{pp + 0.03:.4f}\t{b - a:.4f}" for a, pp, b in zip(n["onset_s"], n["pitch"], n["offset_s"])]
        (piece / f"Notes_{stem}.txt").write_text("\n".join(lines) + "\n")
        if track == 1:  # URMP's F0 annotation: time, Hz (5 ms grid)
            t = np.arange(0, p.duration_s, 0.005)
            f0 = np.interp(t, np.arange(p.curves["f0_hz"].size) / 250, p.curves["f0_hz"])
            np.savetxt(piece / f"F0s_{stem}.txt", np.stack([t, f0], 1), fmt="%.4f")
    sf.write(str(piece / "AuSep_3_vn_01_Test.wav"), np.zeros(SR * 5), SR)  # stem without notes
    pieces, problems = urmp_pieces(tmp_path / "urmp")
    assert {p.instrument for p in pieces} == {"flute", "trumpet"}
    assert len({p.group for p in pieces}) == 1
    assert any("missing annotation" in r for _, r in problems)
    cfg = CacheConfig(source="urmp", source_dir=str(tmp_path / "urmp"), out_dir=str(tmp_path / "cache"),
                      n_workers=1, sample_rate=SR, progress=False)
    s = cache_features(cfg)
    assert s["n_ok"] == 2
    entries = {e["instrument"]: e for e in load_manifest(tmp_path / "cache")}
    assert entries["flute"]["has_true_f0"] and not entries["trumpet"]["has_true_f0"]
    f = load_features(tmp_path / "cache", entries["flute"])
    held = f["frame_position"] > 0.3
    cents = 1200 * np.log2(f["true_f0_hz"][held] / (440 * 2 ** ((f["frame_pitch"][held] - 69) / 12)))
    assert np.median(np.abs(cents)) < 30
