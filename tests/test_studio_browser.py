"""The studio page in a real headless Chromium (Debian's ``chromium``, driven by Playwright for Python; no browser
download): load the bundled example, select a note, move its vibrato slider, check through the API that the
performance changed for that note only and the audio changed near it, drag a note up a semitone, undo, export,
play.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``); skipped with
the reason otherwise. Marked ``browser``.
"""
from __future__ import annotations

import io
import json
import os
import urllib.request
import wave
import warnings
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("MIDI_DDSP_CHROMIUM", "/usr/bin/chromium")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bach_chorale.mid"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MIDI_DDSP_CHROMIUM)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                            "(pip install playwright; no browser download needed)")
pytest.importorskip("starlette", reason="the studio extra is not installed (pip install -e '.[studio]')")

from midi_ddsp.studio.server import StudioServer  # noqa: E402
from midi_ddsp.studio.session import Session  # noqa: E402



def _write_random_checkpoints(folder):
    """The random-weight model folder helper, wherever the restructure put it."""
    try:
        from midi_ddsp.random_models import write_random_checkpoints
    except ImportError:
        from midi_ddsp.pipeline import write_random_checkpoints
    return write_random_checkpoints(folder, width=16, f0_hidden=16, reverb_length=4000, seed=0)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url) as r:
        return r.read()


def _wav(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from midi_ddsp import MidiDDSP

    if not EXAMPLE.is_file():
        pytest.skip(f"the bundled example {EXAMPLE} is missing")
    model = MidiDDSP.from_pretrained(_write_random_checkpoints(tmp_path_factory.mktemp("browser_ck")))
    session = Session(model, tmp_path_factory.mktemp("browser_work"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.start(EXAMPLE)
    srv = StudioServer(session, "127.0.0.1", 0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 900}, accept_downloads=True)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server.url)
        pg.wait_for_selector("body[data-ready='1']", timeout=60000)
        pg.errors = errors
        yield pg
        ctx.close()


def _note_centre(page, voice: int, note: int) -> tuple[float, float]:
    return tuple(page.evaluate(
        """([v, i]) => { const roll = studio.rolls[v].roll, r = roll.noteRect(i),
                         b = roll.canvas.getBoundingClientRect();
                         return [b.left + r.x + Math.min(r.w / 2, 8), b.top + r.y + r.h / 2]; }""", [voice, note]))


def _wait_version(page, above: int) -> None:
    page.wait_for_function(f"studio.state.version > {above} && studio.busy === 0", timeout=60000)


def test_edit_vibrato_in_the_browser(server, page, tmp_path):
    url = server.url
    perf0, audio0 = json.loads(_get(url + "api/performance")), _wav(_get(url + "api/audio.wav"))
    assert page.locator("canvas.roll").count() == len(perf0["voices"]) == 4
    v, i = 1, 10
    note = perf0["voices"][v]["notes"][i]

    page.mouse.click(*_note_centre(page, v, i))
    assert page.locator("#sel-info").inner_text().startswith(f"Voice {v + 1}, note {i + 1}")
    version = page.evaluate("studio.state.version")
    target = 0.95 if note["vibrato"] < 0.5 else 0.05
    page.locator("input[data-control=vibrato]").fill(str(target))
    _wait_version(page, version)

    perf1 = json.loads(_get(url + "api/performance"))
    for vv, voice in enumerate(perf1["voices"]):
        for ii, n in enumerate(voice["notes"]):
            old = perf0["voices"][vv]["notes"][ii]
            if (vv, ii) == (v, i):
                assert n["vibrato"] == target and {k: n[k] for k in n if k != "vibrato"} == \
                       {k: old[k] for k in old if k != "vibrato"}
            else:
                assert n == old
    audio1 = _wav(_get(url + "api/audio.wav"))
    changed = np.flatnonzero(np.abs(audio1 - audio0) > 1.5 / 32767) / 16000
    assert changed.size, "the audio did not change"
    reverb_s = server.session.model.synth.reverb.irs.shape[-1] / 16000
    assert changed[0] >= note["onset_s"] - 4.5 and changed[-1] <= note["offset_s"] + 4.5 + reverb_s  # near it
    on, off = int(note["onset_s"] * 16000), int(note["offset_s"] * 16000)
    assert np.abs(audio1[on:off] - audio0[on:off]).max() > 1e-4
    assert page.evaluate("studio.lastLatency") > 0
    assert "edit → playable audio" in page.locator("#status").inner_text()

    # drag another note up by one semitone (one pitch row)
    v2, i2 = 0, 5
    x, y = _note_centre(page, v2, i2)
    row = page.evaluate(f"studio.rolls[{v2}].roll.rowH")
    version = page.evaluate("studio.state.version")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - row * 0.6, steps=3)
    page.mouse.move(x, y - row * 1.0, steps=3)
    page.mouse.up()
    _wait_version(page, version)
    moved = json.loads(_get(url + "api/performance"))["voices"][v2]["notes"][i2]
    assert moved["pitch"] == perf0["voices"][v2]["notes"][i2]["pitch"] + 1
    assert moved["onset_s"] == perf0["voices"][v2]["notes"][i2]["onset_s"]

    # undo twice: back to the original performance and audio
    for _ in range(2):
        version = page.evaluate("studio.state.version")
        page.click("#undo")
        _wait_version(page, version)
    assert json.loads(_get(url + "api/performance")) == perf0
    assert np.abs(_wav(_get(url + "api/audio.wav")) - audio0).max() <= 1.5 / 32767
    assert page.locator("#undo").is_disabled() and not page.locator("#redo").is_disabled()

    # export: the JSON download is the current performance, the WAV download the mix
    with page.expect_download() as dl:
        page.click("#x-json")
    assert json.loads(Path(dl.value.path()).read_text()) == perf0
    with page.expect_download() as dl:
        page.click("#x-wav")
    assert np.abs(_wav(Path(dl.value.path()).read_bytes()) - audio0).max() <= 1.5 / 32767
    page.screenshot(path=str(tmp_path / "studio.png"))
    assert not page.errors


def test_views_and_playback(page):
    page.select_option("#view", "spectrogram")
    page.wait_for_function("studio.audioView.spec !== null", timeout=30000)
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('cursor').dataset.time) > 0.2", timeout=20000)
    page.click("#stop")
    assert page.evaluate("studio.player.playing") is False
    page.select_option("#view", "waveform")
    assert not page.errors


def test_another_take_of_selected_notes(server, page):
    before = json.loads(_get(server.url + "api/performance"))
    page.mouse.click(*_note_centre(page, 2, 3))
    version = page.evaluate("studio.state.version")
    page.fill("#seed", "77")
    page.click("#retake")
    _wait_version(page, version)
    after = json.loads(_get(server.url + "api/performance"))
    diffs = [(v, i) for v, voice in enumerate(after["voices"]) for i, n in enumerate(voice["notes"])
             if n != before["voices"][v]["notes"][i]]
    assert diffs == [(2, 3)]
    assert not page.errors


def test_open_a_file_from_the_page(server, page, tmp_path):
    doc = json.loads(_get(server.url + "api/performance"))
    doc["voices"] = doc["voices"][:2]
    path = tmp_path / "two_voices.json"
    path.write_text(json.dumps(doc))
    version = page.evaluate("studio.state.version")
    page.set_input_files("#file", str(path))
    _wait_version(page, version)
    assert page.locator("canvas.roll").count() == 2
    assert page.locator("#source").inner_text() == "two_voices.json"
    assert not page.errors
