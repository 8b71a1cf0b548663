"""The studio's HTTP API (midi_ddsp.studio) against a random-weight model: every endpoint, every kind of bad body,
undo/redo, autosave and resume, concurrent requests, and the security rules."""
from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
import wave
import warnings

import numpy as np
import pretty_midi
import pytest

pytest.importorskip("starlette", reason="the studio extra is not installed (pip install -e '.[studio]')")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from midi_ddsp.note_level.serialization import from_csv, from_json  # noqa: E402
from midi_ddsp.studio.command import add_studio_parser  # noqa: E402
from midi_ddsp.studio.edits import CONTROL_MAX  # noqa: E402
from midi_ddsp.studio.server import STATIC, StudioServer, create_app, host_warning  # noqa: E402
from midi_ddsp.studio.session import MAX_UPLOAD_BYTES, Session  # noqa: E402

H = {"X-Studio": "1"}


def _write_random_checkpoints(folder):
    """The random-weight model folder helper, wherever the restructure put it."""
    try:
        from midi_ddsp.random_models import write_random_checkpoints
    except ImportError:
        try:
            from midi_ddsp.pipeline import write_random_checkpoints
        except ImportError:
            from tests.pipeline_helpers import write_random_checkpoints
    return write_random_checkpoints(folder, width=16, f0_hidden=16, reverb_length=4000, seed=0)


@pytest.fixture(scope="session")
def studio_model(tmp_path_factory):
    from midi_ddsp import MidiDDSP

    return MidiDDSP.from_pretrained(_write_random_checkpoints(tmp_path_factory.mktemp("studio_ck")))


MELODY = [(72, 0.0, 0.5), (74, 0.5, 1.0), (76, 1.0, 1.5), (77, 1.5, 2.0), (79, 2.5, 3.0), (81, 3.5, 4.0)]
BASS = [(48, 0.0, 2.0), (43, 2.0, 4.0)]


def _midi(path, tracks):
    pm = pretty_midi.PrettyMIDI()
    for program, notes in tracks:
        inst = pretty_midi.Instrument(program=program)
        inst.notes = [pretty_midi.Note(100, p, s, e) for p, s, e in notes]
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


@pytest.fixture
def midi_path(tmp_path):
    return _midi(tmp_path / "duet.mid", [(40, MELODY), (42, BASS)])


@pytest.fixture
def session(studio_model, midi_path, tmp_path):
    s = Session(studio_model, tmp_path / "work", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.start(midi_path)
    yield s
    s.close()


@pytest.fixture
def client(session):
    return TestClient(create_app(session), base_url="http://127.0.0.1")


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767.0, w.getframerate()


def _perf(client) -> dict:
    r = client.get("/api/performance")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


# ------------------------------------------------------------------------------------------- reading
def test_performance_is_the_export_json(client, studio_model, midi_path):
    doc = _perf(client)
    assert doc["format"] == "midi-ddsp-performance" and len(doc["voices"]) == 2
    perfs = from_json(client.get("/api/performance").text)
    # the same notes as the MIDI file, performed by the expression model with the session's seed, at the
    # expression temperature of a render
    expected = studio_model.perform(studio_model.read(midi_path).voices,
                                    temperature=studio_model.expression_temperature(1.0), seed=0)
    assert perfs == expected
    assert [n["pitch"] for n in doc["voices"][0]["notes"]] == [p for p, _, _ in MELODY]


def test_audio_wav_is_the_mix(client):
    st = client.get("/api/state").json()
    x, sr = _wav(client.get("/api/audio.wav").content)
    assert sr == st["sample_rate"] == 16000
    assert abs(len(x) / sr - st["duration_s"]) < 1e-9
    assert len(x) / sr > 4.0  # last offset 4 s, plus the release and reverb tail
    assert np.abs(x).max() > 1e-4  # not silent
    assert np.abs(x).max() <= 0.99 + 1e-4
    d = client.get("/api/audio.wav?download=1")
    assert "attachment" in d.headers["content-disposition"] and d.content == client.get("/api/audio.wav").content


def test_curves_follow_the_notes(client):
    c = client.get("/api/curves").json()
    fr, voices = c["frame_rate"], c["voices"]
    assert fr == 50 and len(voices) == 2
    for (pitch, on, off), v in ((MELODY[2], 0), (BASS[1], 1)):
        f0 = voices[v]["f0_hz"][int((on + off) / 2 * fr)]
        semis = 12 * np.log2(f0 / 440.0) + 69
        assert abs(semis - pitch) < 5  # the random f0 model deviates at most 4 semitones from the note


def test_spectrogram(client):
    r = client.get("/api/spectrogram?t0=0&t1=4&width=64&height=32")
    assert r.status_code == 200 and len(r.content) == 64 * 32
    img = np.frombuffer(r.content, np.uint8).reshape(32, 64)
    assert img.max() == 255 and img.min() < 255
    for q in ("t0=3&t1=1", "width=2", "height=5000", "t0=x"):
        bad = client.get(f"/api/spectrogram?{q}")
        assert bad.status_code == 400 and bad.json()["error"]


def test_exports(client):
    doc = _perf(client)
    j = client.get("/api/export/json")
    assert j.status_code == 200 and "attachment" in j.headers["content-disposition"] and j.json() == doc
    perfs = from_json(json.dumps(doc))
    assert from_csv(client.get("/api/export/csv").text) == perfs
    pm = pretty_midi.PrettyMIDI(io.BytesIO(client.get("/api/export/mid").content))
    assert len(pm.instruments) == 2
    for inst, perf in zip(pm.instruments, perfs):
        got = sorted(((n.pitch, n.start, n.end) for n in inst.notes), key=lambda g: g[1])
        want = [(n.pitch, n.onset_s, n.offset_s) for n in perf.notes]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert np.allclose([g[1:] for g in got], [w[1:] for w in want], atol=2e-3)
    assert client.get("/api/export/exe").status_code == 404


# ------------------------------------------------------------------------------------------- editing
def test_edit_changes_that_note_and_the_audio_near_it(client, session):
    before, a0 = _perf(client), _wav(client.get("/api/audio.wav").content)[0]
    gain0 = client.get("/api/state").json()["gain"]
    r = client.put("/api/performance", json={"edits": [{"voice": 0, "note": 2, "vibrato": 0.95, "volume": 0.9}]},
                   headers=H)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["changed"] and res["selected"] == [[0, 2]] and res["last_render"]["kind"] == "region"
    after = _perf(client)
    for v in range(2):
        for i, (n0, n1) in enumerate(zip(before["voices"][v]["notes"], after["voices"][v]["notes"])):
            if (v, i) == (0, 2):
                assert n1["vibrato"] == 0.95 and n1["volume"] == 0.9
                assert {k: n1[k] for k in n1 if k not in ("vibrato", "volume")} == \
                       {k: n0[k] for k in n0 if k not in ("vibrato", "volume")}
            else:
                assert n1 == n0
    a1 = _wav(client.get("/api/audio.wav").content)[0]
    assert a1.shape == a0.shape
    (_, start, stop), = res["last_render"]["regions"]
    assert start <= MELODY[2][1] and stop >= MELODY[2][2]
    if res["gain"] == gain0:  # the mix scale did not change: nothing outside the region and its reverb moved
        changed = np.flatnonzero(np.abs(a1 - a0) > 1.5 / 32767)
        ir_s = session.model.synth.reverb.irs.shape[-1] / 16000
        assert changed.size and changed[0] / 16000 >= start - 1e-3 and changed[-1] / 16000 <= stop + ir_s
    on, off = (int(t * 16000) for t in MELODY[2][1:])
    assert np.abs(a1[on:off] - a0[on:off]).max() > 1e-3  # the note itself sounds different


def test_whole_performance_put(client):
    doc = _perf(client)
    doc["voices"][0]["notes"][1]["brightness"] = 0.0
    r = client.put("/api/performance", content=json.dumps(doc), headers=H)
    assert r.status_code == 200 and r.json()["last_render"]["kind"] == "region"
    assert _perf(client) == doc
    doc["voices"] = doc["voices"][:1]  # one voice fewer: everything is rendered again
    r = client.put("/api/performance", json=doc, headers=H)
    assert r.status_code == 200 and r.json()["last_render"]["kind"] == "full"
    assert len(_perf(client)["voices"]) == 1


def test_move_and_resize_notes(client):
    r = client.put("/api/performance", json={"edits": [{"voice": 0, "note": 5, "pitch": 60, "onset_s": 0.0,
                                                        "offset_s": 0.4}, {"voice": 0, "note": 0, "onset_s": 3.2,
                                                                           "offset_s": 3.4}]}, headers=H)
    assert r.status_code == 200, r.text
    notes = _perf(client)["voices"][0]["notes"]
    assert (notes[0]["pitch"], notes[0]["onset_s"]) == (60, 0.0)  # re-sorted by onset
    assert notes[-1]["onset_s"] == 3.2 and sorted(map(tuple, r.json()["selected"])) == [(0, 0), (0, 5)]


def test_instrument_change_and_undo(client):
    a0 = client.get("/api/audio.wav").content
    r = client.put("/api/performance", json={"instruments": [{"voice": 1, "instrument": "tuba"}]}, headers=H)
    assert r.status_code == 200 and r.json()["voices"][1]["instrument"] == "tuba"
    assert client.get("/api/audio.wav").content != a0
    assert client.post("/api/undo", headers=H).json()["voices"][1]["instrument"] == "cello"
    assert np.abs(_wav(client.get("/api/audio.wav").content)[0] - _wav(a0)[0]).max() <= 1.5 / 32767


BAD_BODIES = [
    ("{", 400, "not valid JSON"),
    ("[1, 2]", 400, "JSON object"),
    ("{}", 400, "expected a whole performance"),
    ('{"edits": [{"voice": 0, "note": 0, "vibrato": NaN}]}', 400, "finite"),
    ('{"edits": [{"voice": 0, "note": 0, "vibrato": 1e400}]}', 400, "finite"),
    ('{"edits": {"voice": 0}}', 400, "must be lists"),
    ('{"edits": [{"voice": 5, "note": 0}]}', 404, "voice 5"),
    ('{"edits": [{"voice": 0, "note": 99}]}', 404, "note 99"),
    ('{"edits": [{"voice": "0", "note": 0}]}', 400, "integer"),
    ('{"edits": [{"voice": 0, "note": 0, "wobble": 1}]}', 400, "unknown field"),
    (f'{{"edits": [{{"voice": 0, "note": 0, "vibrato": {CONTROL_MAX + 1}}}]}}', 400, "outside"),
    ('{"edits": [{"voice": 0, "note": 0, "vibrato": "high"}]}', 400, "finite number"),
    ('{"edits": [{"voice": 0, "note": 0, "pitch": 128}]}', 400, "outside 0..127"),
    ('{"edits": [{"voice": 0, "note": 0, "pitch": 60.5}]}', 400, "whole number"),
    ('{"edits": [{"voice": 0, "note": 0, "velocity": 0}]}', 400, "outside 1..127"),
    ('{"edits": [{"voice": 0, "note": 0, "onset_s": -1}]}', 400, "outside"),
    ('{"edits": [{"voice": 0, "note": 0, "onset_s": 0.6}]}', 400, "not after"),
    ('{"edits": [{"voice": 0, "note": 0, "offset_s": 0.8}]}', 400, "overlaps"),
    ('{"edits": [{"voice": 0, "note": 0, "onset_s": 100000, "offset_s": 100001}]}', 400, "outside"),
    ('{"instruments": [{"voice": 0, "instrument": "kazoo"}]}', 400, "kazoo"),
    ('{"instruments": [{"voice": 0}]}', 400, "expected"),
    ('{"voices": []}', 400, "no voices"),
    ('{"voices": [{"instrument": "violin", "notes": [{"pitch": 60}]}]}', 400, "missing"),
    ('{"voices": [{"instrument": "violin", "notes": [{"pitch": 60, "onset_s": 0, "offset_s": 1, "volume": 0.5, '
     '"vol_fluc": 0.5, "vol_peak_pos": 0.5, "vibrato": 0.5, "brightness": 0.5, "attack": 9}]}]}', 400, "outside"),
    ('{"voices": [{"instrument": "violin", "notes": [{"pitch": 60, "onset_s": 0, "offset_s": 1500, "volume": 0.5, '
     '"vol_fluc": 0.5, "vol_peak_pos": 0.5, "vibrato": 0.5, "brightness": 0.5, "attack": 0.5}]}]}', 413, "lasts"),
    ('{"format": "something-else", "voices": []}', 400, "unsupported"),
    ('{"voices": [], "extra": 1}', 400, "unknown key"),
]


@pytest.mark.parametrize("body,status,words", BAD_BODIES)
def test_bad_bodies_leave_the_performance_unchanged(client, body, status, words):
    before, state = client.get("/api/performance").text, client.get("/api/state").json()
    r = client.put("/api/performance", content=body, headers=H)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words.lower() in message.lower() and "\n" not in message
    assert client.get("/api/performance").text == before
    assert client.get("/api/state").json()["version"] == state["version"]


def test_body_size_limit(client):
    r = client.put("/api/performance", content=b"{" + b" " * (9 << 20) + b"}", headers=H)
    assert r.status_code == 413


def test_undo_redo_restore_audio_exactly(client):
    p0, a0 = client.get("/api/performance").text, _wav(client.get("/api/audio.wav").content)[0]
    assert client.post("/api/undo", headers=H).status_code == 409  # nothing yet
    client.put("/api/performance", json={"edits": [{"voice": 1, "note": 1, "attack": 1.0}]}, headers=H)
    p1, a1 = client.get("/api/performance").text, _wav(client.get("/api/audio.wav").content)[0]
    r = client.post("/api/undo", headers=H)
    assert r.status_code == 200 and r.json()["can_redo"] and not r.json()["can_undo"]
    assert client.get("/api/performance").text == p0
    assert np.abs(_wav(client.get("/api/audio.wav").content)[0] - a0).max() <= 1.5 / 32767
    assert client.post("/api/redo", headers=H).status_code == 200
    assert client.get("/api/performance").text == p1
    assert np.abs(_wav(client.get("/api/audio.wav").content)[0] - a1).max() <= 1.5 / 32767
    assert client.post("/api/redo", headers=H).status_code == 409


def test_retake_changes_only_the_chosen_notes(client):
    before = _perf(client)
    r = client.post("/api/retake", json={"notes": [[0, 1], [1, 0]], "temperature": 1.0, "seed": 12345}, headers=H)
    assert r.status_code == 200, r.text
    after = _perf(client)
    for v in range(2):
        for i, (a, b) in enumerate(zip(before["voices"][v]["notes"], after["voices"][v]["notes"])):
            if (v, i) in ((0, 1), (1, 0)):
                assert a != b and {k: a[k] for k in ("pitch", "onset_s")} == {k: b[k] for k in ("pitch", "onset_s")}
            else:
                assert a == b
    for body in ({"notes": []}, {"notes": [[0, 99]]}, {"notes": [[0, 1]], "temperature": -1},
                 {"notes": [[0, 1]], "seed": "x"}, {"notes": [[0, 1]], "colour": 1}):
        bad = client.post("/api/retake", json=body, headers=H)
        assert 400 <= bad.status_code < 500 and bad.json()["error"]
    assert _perf(client) == after


# ---------------------------------------------------------------------------------------------- files
def test_open_files(client, tmp_path, session):
    csv_text = client.get("/api/export/csv").text
    r = client.post("/api/open?name=../../evil/x.csv", content=csv_text.encode(), headers=H)
    assert r.status_code == 200 and r.json()["source_name"] == "x.csv"
    assert not (tmp_path / "evil").exists() and not (session.workdir / "x.csv").exists()
    midi = _midi(tmp_path / "solo.mid", [(73, [(72, 0.0, 1.0), (76, 1.0, 2.0)])]).read_bytes()
    r = client.post("/api/open?name=solo.mid", content=midi, headers=H)
    assert r.status_code == 200 and [v["instrument"] for v in r.json()["voices"]] == ["flute"]
    assert not r.json()["can_undo"]
    assert {p.name for p in session.workdir.iterdir()} <= {"render.npz", "session.json"}
    for data, status in ((b"MThd\x00\x00\x00\x06garbage", 422), (b"\xff\xfe\x00binary", 415),
                         (b"pitch,onset_s\n60,0\n", 422), (b'{"voices": 3}', 422)):
        bad = client.post("/api/open?name=x", content=data, headers=H)
        assert bad.status_code == status, bad.text
        assert bad.json()["error"]
    assert [v["instrument"] for v in client.get("/api/state").json()["voices"]] == ["flute"]
    big = client.post("/api/open?name=big.mid", content=b"MThd" + b"\0" * MAX_UPLOAD_BYTES, headers=H)
    assert big.status_code == 413


def test_autosave_and_resume(studio_model, session, midi_path, tmp_path, client):
    client.put("/api/performance", json={"edits": [{"voice": 0, "note": 3, "brightness": 0.1}]}, headers=H)
    client.put("/api/performance", json={"edits": [{"voice": 1, "note": 1, "vibrato": 0.7}]}, headers=H)
    perf, audio = client.get("/api/performance").text, client.get("/api/audio.wav").content
    session.close()  # writes the render cache
    assert (session.workdir / "session.json").is_file() and (session.workdir / "render.npz").is_file()
    for source in (None, midi_path):  # a restart, with or without the file it was opened from
        s2 = Session(studio_model, session.workdir)
        assert s2.start(source).startswith("resumed")
        c2 = TestClient(create_app(s2), base_url="http://127.0.0.1")
        assert c2.get("/api/performance").text == perf
        assert c2.get("/api/state").json()["last_render"]["kind"] == "resume"
        assert np.abs(_wav(c2.get("/api/audio.wav").content)[0] - _wav(audio)[0]).max() <= 1.5 / 32767
        s2.close()
    s3 = Session(studio_model, session.workdir)  # the history survived too
    s3.start()
    c3 = TestClient(create_app(s3), base_url="http://127.0.0.1")
    c3.post("/api/undo", headers=H)
    assert c3.get("/api/performance").json()["voices"][1]["notes"][1]["vibrato"] != 0.7
    assert c3.post("/api/undo", headers=H).status_code == 200
    assert from_json(c3.get("/api/performance").text) == studio_model.perform(
        studio_model.read(midi_path).voices, temperature=studio_model.expression_temperature(1.0), seed=0)
    s3.close()
    other = _midi(tmp_path / "other.mid", [(40, [(60, 0.0, 1.0)])])
    s4 = Session(studio_model, session.workdir)
    assert s4.start(other).startswith("opened")  # another file: a new session
    s4.close()


def test_corrupt_autosave_starts_afresh(studio_model, tmp_path, midi_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "session.json").write_text("{not json")
    s = Session(studio_model, work)
    with pytest.warns(Warning, match="unreadable autosave"):
        assert s.start(midi_path).startswith("opened")
    assert (work / "session.json.bad").is_file()
    s.close()


# ------------------------------------------------------------------------------------------ security
def test_mutations_need_the_studio_header_and_same_origin(client):
    before = client.get("/api/performance").text
    body = {"edits": [{"voice": 0, "note": 0, "vibrato": 0.5}]}
    assert client.put("/api/performance", json=body).status_code == 403
    r = client.put("/api/performance", json=body, headers={**H, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    assert client.post("/api/undo", headers={"Origin": "http://127.0.0.1"}).status_code == 403
    assert client.get("/api/performance").text == before
    assert client.put("/api/performance", json=body, headers={**H, "Origin": "http://127.0.0.1"}).status_code == 200
    assert "access-control-allow-origin" not in client.get("/api/performance").headers


def test_host_header_is_checked(session):
    c = TestClient(create_app(session), base_url="http://attacker.example")
    assert c.get("/api/performance").status_code == 403
    assert TestClient(create_app(session), base_url="http://localhost").get("/api/state").status_code == 200


def test_static_assets_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for f in STATIC.iterdir():
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name  # no CDN
        r = client.get(f"/static/{f.name}")
        assert r.status_code == 200 and r.text == text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    for bad in ("/static/..%2Fsession.py", "/static/../session.py", "/static/.hidden", "/static/nope.js",
                "/static/%2e%2e%2fserver.py"):
        assert client.get(bad).status_code == 404


def test_loopback_by_default_and_warning_when_exposed():
    import argparse

    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    add_studio_parser(sub)
    args = sub.choices["studio"].parse_args([])
    assert args.host == "127.0.0.1" and args.midi is None and not args.no_browser
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "anyone" in host_warning("0.0.0.0") and "192.168.1.5" in host_warning("192.168.1.5")


def test_cli_studio_command_errors(monkeypatch, capsys):
    from midi_ddsp.cli import main

    assert main(["studio", "--no-browser", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "midi-ddsp: error: --port 70000: expected 0..65535"
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)  # as if the studio extra were missing
    assert main(["studio", "--no-browser"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "midi-ddsp: error: install the studio extra: pip install -e '.[studio]'"]


def test_concurrent_requests_do_not_corrupt(session):
    server = StudioServer(session, "127.0.0.1", 0).start()
    try:
        p0 = from_json(urllib.request.urlopen(server.url + "api/performance").read().decode())
        errors: list[str] = []

        def editor(k):
            for j in range(3):
                body = json.dumps({"edits": [{"voice": k % 2, "note": k // 2, "vibrato": 0.1 * j + 0.01 * k}]})
                req = urllib.request.Request(server.url + "api/performance", body.encode(), method="PUT",
                                             headers={**H, "Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(req).read()
                except urllib.error.HTTPError as e:
                    errors.append(e.read().decode())

        def reader():
            for _ in range(6):
                from_json(urllib.request.urlopen(server.url + "api/performance").read().decode())
                _wav(urllib.request.urlopen(server.url + "api/audio.wav").read())

        threads = [threading.Thread(target=editor, args=(k,)) for k in range(4)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        final = from_json(urllib.request.urlopen(server.url + "api/performance").read().decode())
        for k in range(4):  # each editor's last value won for its note; nothing else moved
            assert final[k % 2].control("vibrato")[k // 2] == pytest.approx(0.2 + 0.01 * k)
        vib = [p.control("vibrato") for p in final]
        for v in range(2):
            rest = [i for i in range(len(final[v])) if (i * 2 + v) >= 4 or i >= 2]
            assert np.array_equal(vib[v][rest], p0[v].control("vibrato")[rest])
        steps = 0
        while session.state()["can_undo"]:
            session.undo()
            steps += 1
        assert steps == 12 and session.perfs == p0  # every edit is one step, in a consistent order
    finally:
        server.stop()
