"""What dense controllers cost: a violin melody with pitch bend, CC1 and CC11 every 10 ms, rendered with and
without its controllers (in-process, after a warm-up render; the same notes both times).

    python bench/bench_controllers.py [--seconds 120] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))

from eval_controllers import _midi, bend, cc, note  # noqa: E402


def dense_file(path: Path, seconds: float) -> tuple[Path, int, int]:
    rng = np.random.default_rng(0)
    events, t = [], 0.2
    while t < seconds - 1.0:
        d = float(rng.choice([0.25, 0.5, 1.0]))
        events += note(int(rng.integers(62, 84)), t, t + 0.95 * d)
        t += d
    n_notes = len(events) // 2
    ticks = np.arange(0.0, seconds, 0.01)
    events += [bend(x, 2000 * np.sin(2 * np.pi * 0.3 * x)) for x in ticks]
    events += [cc(x, 11, 70 + 50 * np.sin(2 * np.pi * 0.1 * x)) for x in ticks]
    events += [cc(x, 1, 64 + 60 * np.sin(2 * np.pi * 0.05 * x)) for x in ticks]
    return _midi(path, events), n_notes, 3 * len(ticks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from midi_ddsp import MidiDDSP
    from midi_ddsp.controller_render import render_midi

    warnings.simplefilter("ignore")
    model = MidiDDSP.from_pretrained()
    with tempfile.TemporaryDirectory() as tmp:
        path, n_notes, n_events = dense_file(Path(tmp) / "dense.mid", args.seconds)
        times = {False: [], True: []}
        render_midi(model, path, seed=0, progress=False, keep_params=False)   # warm-up
        for _ in range(args.repeats):
            for ignore in (False, True):
                t = time.perf_counter()
                render_midi(model, path, seed=0, progress=False, keep_params=False, controllers=not ignore)
                times[ignore].append(time.perf_counter() - t)
    on, off = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.seconds:.0f} s violin, {n_notes} notes, {n_events} controller events: with controllers {on:.2f} s, "
          f"ignoring them {off:.2f} s (median of {args.repeats}; ratio {on / off:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
