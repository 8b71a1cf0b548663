"""Studio: edit-to-playable-audio latency on a 3-minute piece, and how close a regional re-render is to a full one.

    python bench/bench_studio_latency.py                   # shipped checkpoints/ (random weights if absent)
    python bench/bench_studio_latency.py --checkpoint DIR --minutes 3 --edits 8

The piece: the bundled Bach chorale (four voices) repeated to ``--minutes`` (1155 notes for 3 minutes), opened
as a performance so no expression model runs. Each edit is one note's vibrato (or volume) moved through the
HTTP API (Starlette's in-process test client: the whole request path, JSON parsing, validation, locking,
autosave), then the mix fetched as WAV: latency = PUT sent -> WAV bytes received (what the page waits for before
it can play, minus the browser's decoding). Printed: the full render, the median and worst edit latency and the
regional render time alone, the undo latency (restores a patch, no rendering), target <= 1 s.

Closeness: the edited performance rendered in full with the same seed against the spliced audio, over the
re-rendered region: relative spectral distance (L1 of STFT magnitudes, 1024/256) and the median f0 difference of
the edited note (cents). As a yardstick, the same figures between two full renders with different seeds (another
take) and between two full renders with the same seed (0: determinism). At temperature 0 (deterministic f0) the
region should come out close to the full render; at temperature 1 it is a new take of the region's f0 until
randomness is keyed per note.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def piece(model, minutes: float):
    from midi_ddsp.note_level.notes import NoteSequence, Performance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voices = model.read(ROOT / "examples" / "bach_chorale.mid").voices
    if model.performance_model is not None:
        perfs = model.perform(voices, temperature=1.0, seed=0)
    else:
        perfs = [Performance(v, np.full((len(v), 6), 0.5)) for v in voices]
    period = max(p.sequence.end_s for p in perfs) + 1.0
    reps = max(1, int(np.ceil(minutes * 60 / period)))
    out = []
    for p in perfs:
        notes = [replace(n, onset_s=n.onset_s + k * period, offset_s=n.offset_s + k * period)
                 for k in range(reps) for n in p.notes]
        out.append(Performance(NoteSequence(tuple(notes), p.instrument, p.name), np.tile(p.controls, (reps, 1))))
    return out


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    def mag(x):
        n = 1024
        frames = np.lib.stride_tricks.sliding_window_view(x, n)[::256] * np.hanning(n)
        return np.abs(np.fft.rfft(frames, axis=1))

    A, B = mag(a), mag(b)
    return float(np.abs(A - B).sum() / max(B.sum(), 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--edits", type=int, default=8)
    ap.add_argument("--skip-closeness", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from starlette.testclient import TestClient

    from midi_ddsp import MidiDDSP
    from midi_ddsp.note_level.serialization import to_json
    from midi_ddsp.pipeline import DEFAULT_CHECKPOINTS
    from midi_ddsp.studio.server import create_app
    from midi_ddsp.studio.session import Session

    torch.set_num_threads(1)
    folder = args.checkpoint
    if folder is None and not (DEFAULT_CHECKPOINTS / "generator.safetensors").is_file():
        try:
            from midi_ddsp.random_models import write_random_checkpoints
        except ImportError:
            from midi_ddsp.pipeline import write_random_checkpoints
        folder = write_random_checkpoints(tempfile.mkdtemp(), small_performance=False)
        print("no shipped checkpoints: random weights of the default sizes")
    model = MidiDDSP.from_pretrained(folder)
    perfs = piece(model, args.minutes)
    n_notes = sum(len(p) for p in perfs)
    print(f"model {model.path}; load avg {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}")

    for temperature in (1.0, 0.0):
        work = tempfile.mkdtemp()
        session = Session(model, work, seed=0, temperature=temperature)
        client = TestClient(create_app(session), base_url="http://127.0.0.1")
        t = time.perf_counter()
        client.post("/api/open?name=bench.json", content=to_json(perfs).encode(), headers={"X-Studio": "1"})
        full_s = time.perf_counter() - t
        duration = session.render.duration_s
        print(f"\ntemperature {temperature}: {duration:.1f} s piece, {len(perfs)} voices, {n_notes} notes; "
              f"full render (open) {full_s:.2f} s")
        rng = np.random.default_rng(0)
        lat, region, spans = [], [], []
        edited = []
        for k in range(args.edits):
            v = int(rng.integers(len(perfs)))
            i = int(rng.integers(len(perfs[v]) // 8, len(perfs[v]) * 7 // 8))
            control = "vibrato" if k % 2 == 0 else "volume"
            value = round(float(rng.uniform(0.05, 0.95)), 3)
            body = json.dumps({"edits": [{"voice": v, "note": i, control: value}]})
            t = time.perf_counter()
            r = client.put("/api/performance", content=body, headers={"X-Studio": "1"})
            wav = client.get("/api/audio.wav").content
            lat.append(time.perf_counter() - t)
            assert r.status_code == 200 and len(wav) > 44, r.text
            info = r.json()["last_render"]
            region.append(info["seconds"])
            spans.extend(b - a for _, a, b in info["regions"])
            edited.append((v, i, info["regions"]))
        print(f"edit -> playable WAV: median {statistics.median(lat):.3f} s, worst {max(lat):.3f} s "
              f"(target <= 1 s); regional render alone: median {statistics.median(region):.3f} s; "
              f"re-rendered span median {statistics.median(spans):.2f} s of {duration:.0f} s")
        t = time.perf_counter()
        client.post("/api/undo", headers={"X-Studio": "1"})
        client.get("/api/audio.wav")
        print(f"undo -> playable WAV: {time.perf_counter() - t:.3f} s (patch restore, no rendering)")
        session.close()
        if args.skip_closeness:
            continue
        client.post("/api/redo", headers={"X-Studio": "1"})
        spliced = session.render.mix.copy()
        f0_spliced = session.render.f0_hz.copy()
        current = list(session.perfs)
        sr = session.render.sample_rate

        def full(seed):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = model.render(current, temperature=temperature, seed=seed, progress=False)
            return res.mix, np.stack([p.f0_hz[0, :, 0].numpy() for p in res.params])

        ref, f0_ref = full(0)
        again, _ = full(0)
        other, f0_other = full(1)
        rows = []
        for v, i, regions in edited:
            for _, a, b in regions:
                s0, s1 = int(a * sr), int(b * sr)
                note = current[v].notes[i]
                fa, fb = int(note.onset_s * model.frame_rate), int(note.offset_s * model.frame_rate)

                def cents(x, y):
                    ok = (x[fa:fb] > 0) & (y[fa:fb] > 0)
                    return float(np.median(np.abs(1200 * np.log2(x[fa:fb][ok] / y[fa:fb][ok])))) if ok.any() else 0

                rows.append((spectral_distance(spliced[s0:s1], ref[s0:s1]), spectral_distance(other[s0:s1], ref[s0:s1]),
                             spectral_distance(again[s0:s1], ref[s0:s1]), cents(f0_spliced[v], f0_ref[v]),
                             cents(f0_other[v], f0_ref[v])))
        r = np.median(np.array(rows), axis=0)
        n = min(len(ref), len(spliced))  # an edit near the end may move where the audible tail is trimmed
        outside = np.ones(n, bool)
        for v, i, regions in edited:
            for _, a, b in regions:
                outside[int(a * sr):int((b + 3.0) * sr)] = False
        print(f"closeness over the re-rendered regions (median of {len(rows)}): spectral distance spliced vs full "
              f"{r[0]:.3f}, another take (seed 1) vs full {r[1]:.3f}, same seed twice {r[2]:.3f}; edited note's f0 "
              f"spliced vs full {r[3]:.1f} cents, another take {r[4]:.1f} cents")
        print(f"outside the regions (+3 s reverb), spliced vs full: spectral distance "
              f"{spectral_distance(spliced[:n][outside], ref[:n][outside]):.3f} (the full render re-draws every later f0)")


if __name__ == "__main__":
    main()
