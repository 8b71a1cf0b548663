"""FluidSynth and ``midi-ddsp render`` side by side, as whole processes, on the same MIDI files.

Writes string-trio MIDI files (violin, viola, cello; seeded, ~5 notes/s in all) of the asked lengths, then
renders each with FluidSynth (the FluidR3 GM soundfont, its default reverb and chorus) and with
``midi-ddsp render`` at the same sample rate, interleaved (fluidsynth, midi-ddsp, fluidsynth, ...), and prints
per file the median wall time of each, their ratio, and the peak resident memory of each process
(``/usr/bin/time -v``). Takes about (repeats x 25 s) for the default 60 s + 10 min files on a 2-core CPU.

    python bench/bench_vs_fluidsynth.py                                  # shipped checkpoints/, its rate
    python bench/bench_vs_fluidsynth.py --checkpoint DIR --sample-rate 48000 --durations 60 600 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
TRIO = ((40, 67, 84, (0.25, 0.5, 0.5, 0.75)), (41, 55, 72, (0.5, 0.5, 1.0)), (42, 40, 60, (1.0, 1.0, 0.5, 2.0)))


def write_trio(path: Path, seconds: float, seed: int = 0) -> int:
    """A three-voice texture: violin (G4-C6), viola (G3-C5) and cello (E2-C4) random walks in a major key,
    durations drawn from each voice's pattern (seconds), slightly detached. Returns the number of notes."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    count = 0
    for program, low, high, durations in TRIO:
        inst = pretty_midi.Instrument(program=program)
        pitches = [p for p in range(low, high + 1) if p % 12 in scale]
        i, t = len(pitches) // 2, 0.0
        while t < seconds:
            d = float(rng.choice(durations))
            i = int(np.clip(i + rng.integers(-2, 3), 0, len(pitches) - 1))
            inst.notes.append(pretty_midi.Note(int(rng.integers(70, 110)), pitches[i], t, min(t + 0.92 * d, seconds)))
            t += d
            count += 1
        pm.instruments.append(inst)
    pm.write(str(path))
    return count


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process, from GNU time."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    return h * 3600 + m * 60 + s, int(rss.group(1)) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model folder (default: the shipped checkpoints/)")
    ap.add_argument("--sample-rate", type=int, default=None, help="rate of both renders (default: the model's)")
    ap.add_argument("--durations", type=float, nargs="+", default=[60.0, 600.0], help="seconds of each MIDI file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--soundfont", default=SOUNDFONT)
    args = ap.parse_args()
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not Path(args.soundfont).is_file():
        raise SystemExit("needs fluidsynth and the FluidR3 GM soundfont (apt-get install fluidsynth fluid-soundfont-gm)")
    from midi_ddsp.model_files import inspect_folder

    info = inspect_folder(args.checkpoint)
    rate = args.sample_rate or info.sample_rate
    midi_ddsp = [sys.executable, "-m", "midi_ddsp.cli", "render"]
    env = dict(os.environ)
    print(f"model {info.path} ({info.sample_rate} Hz), both rendering at {rate} Hz; {args.repeats} interleaved "
          f"runs each; cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            mid = Path(tmp) / f"trio_{int(seconds)}s.mid"
            notes = write_trio(mid, seconds)
            fs_cmd = [fluidsynth, "-ni", "-q", "-g", "0.5", "-r", str(rate), "-F", str(Path(tmp) / "fs.wav"),
                      args.soundfont, str(mid)]
            ours = [*midi_ddsp, str(mid), "-o", str(Path(tmp) / "md.wav")]
            if args.checkpoint:
                ours += ["--checkpoint", args.checkpoint]
            if rate != info.sample_rate:
                ours += ["--sample-rate", str(rate)]
            runs = {"fluidsynth": [], "midi-ddsp": []}
            for _ in range(args.repeats):
                runs["fluidsynth"].append(timed(fs_cmd, env))
                runs["midi-ddsp"].append(timed(ours, env))
            med = {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in runs.items()}
            ratio = med["midi-ddsp"][0] / med["fluidsynth"][0]
            print(f"{seconds:6.0f} s, 3 voices, {notes} notes: fluidsynth {med['fluidsynth'][0]:.2f} s "
                  f"(peak RSS {med['fluidsynth'][1]:.0f} MB), midi-ddsp {med['midi-ddsp'][0]:.2f} s "
                  f"(peak RSS {med['midi-ddsp'][1]:.0f} MB): ratio {ratio:.2f}x  "
                  f"[all walls: fluidsynth {', '.join(f'{w:.2f}' for w, _ in runs['fluidsynth'])}; "
                  f"midi-ddsp {', '.join(f'{w:.2f}' for w, _ in runs['midi-ddsp'])}]")


if __name__ == "__main__":
    main()
