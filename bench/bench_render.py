"""End-to-end render speed, peak memory and control accuracy of a model folder.

    python bench/bench_render.py                          # checkpoints/ if present, else random-init weights
    python bench/bench_render.py --checkpoint DIR --durations 60 600
    python bench/bench_render.py --skip-speed             # control accuracy only

Speed: a synthetic two-voice piece (violin melody + cello line, GM programs, with rests) of each duration is
written as MIDI and rendered end to end (read -> expression model -> generator -> synthesizer -> mix ->
16-bit WAV) in a fresh process, so the peak resident memory (RSS) belongs to that render alone. Model load
time is measured separately. Real-time factor = audio seconds / wall seconds (higher is faster); CPU seconds
are printed too because this machine's two cores are shared (the load average is printed).

Control accuracy (MIDI-DDSP paper, section "note expression control"): for each of the six controls, a
phrase per instrument (six notes from 5 semitones below to 7 above the instrument's mean training pitch, or
the centre of its range with --register centre) is rendered with that control swept over 5 values (all
notes, other controls 0.5), the performance is re-extracted from the rendered audio (analysis model ->
synthesis parameters -> note expression extractor; f0 re-estimated from the audio) and the Pearson
correlation between the set and re-extracted values is reported, pooled over the instruments and per
instrument. Two more columns: the same with the harmonic distribution and noise magnitudes measured directly
from the audio's spectrum at the tracked f0 (no model; the analysis model leans on what is typical of the
instrument and under-reads brightness and attack noise), and the controls read from the generated synthesis
parameters (how well the generator follows, before any re-extraction error). Targets: >= 0.9 for volume,
vibrato, brightness; >= 0.7 others.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see midi_ddsp/commands.py
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_midi(path: Path, duration_s: float, seed: int = 0) -> Path:
    """Violin melody (0.15-1.2 s notes, some rests) over a cello line (0.5-2 s notes), ``duration_s`` long."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for program, low, high, dur_range, rest_p in ((40, 62, 86, (0.15, 1.2), 0.15), (42, 40, 62, (0.5, 2.0), 0.1)):
        inst = pretty_midi.Instrument(program=program)
        t, pitch = 0.0, (low + high) // 2
        while t < duration_s - 0.2:
            d = float(rng.uniform(*dur_range))
            if rng.random() < rest_p:
                t += d
                continue
            pitch = int(np.clip(pitch + rng.integers(-4, 5), low, high))
            end = min(t + d * 0.95, duration_s)
            inst.notes.append(pretty_midi.Note(int(rng.integers(60, 110)), pitch, t, end))
            t += d
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


def one_render(checkpoint: str, duration_s: float, out_dir: str) -> dict:
    """Runs in a fresh process: load, render, write; returns figures."""
    import torch

    from midi_ddsp.io.audio import write_audio
    from midi_ddsp.pipeline import MidiDDSP

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    mid = synthetic_midi(Path(out_dir) / f"bench_{int(duration_s)}.mid", duration_s)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    model = MidiDDSP.from_pretrained(checkpoint)
    load_s = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c0, t1 = time.process_time(), time.perf_counter()
    result = model.render(mid, seed=0, keep_params=False, progress=False)
    write_audio(Path(out_dir) / f"bench_{int(duration_s)}.wav", result.mix, result.sample_rate)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"duration_s": result.duration_s, "voices": len(result.performances),
            "notes": sum(len(p) for p in result.performances), "load_s": load_s, "wall_s": wall, "cpu_s": cpu,
            "rtf": result.duration_s / wall, "peak_rss_mb": peak, "rss_after_import_mb": rss_before,
            "rss_after_load_mb": rss_loaded, "timings": result.timings}


def speed(checkpoint: str, durations: list[float]) -> None:
    print(f"== speed and memory (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (see midi_ddsp/commands.py)
    print(f"torch threads {env.get('BENCH_THREADS', '2')}, OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}")
    with tempfile.TemporaryDirectory() as tmp:
        for d in durations:
            cmd = [sys.executable, __file__, "--one", str(d), "--checkpoint", checkpoint, "--tmp", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr)
                raise SystemExit(f"render of {d} s failed")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            t = r["timings"]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k not in ("total", "read") and v >= 0.05)
            print(f"{r['duration_s']:7.1f} s audio, {r['voices']} voices, {r['notes']} notes: "
                  f"wall {r['wall_s']:.1f} s = {r['rtf']:.1f}x real time (CPU {r['cpu_s']:.1f} s), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (after imports {r['rss_after_import_mb']:.0f}, after load "
                  f"{r['rss_after_load_mb']:.0f}); model load {r['load_s']:.2f} s")
            print(f"          stages (s): {stages}")


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def sweep_centre(model, inst, register: str) -> int:
    """MIDI pitch the sweep's six notes are placed around (-5..+7 semitones)."""
    typical = model.transfer_stats.get("pitch_stats", {}).get(inst.name, {}).get("mean_midi")
    if register == "typical" and typical is not None:
        return int(round(typical))
    return (inst.low + inst.high) // 2


def accuracy(checkpoint: str, instruments: list[str], values: list[float], register: str = "typical",
             plot: str | None = None) -> None:
    import torch

    from midi_ddsp.instruments import by_name
    from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance
    from midi_ddsp.pipeline import MidiDDSP

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = MidiDDSP.from_pretrained(checkpoint)
    from_audio = model.analysis_model is not None
    print("== control accuracy: Pearson r between set and re-extracted controls, pooled over "
          f"{', '.join(instruments)} (per-instrument range in brackets)")
    print("   notes around " + ", ".join(f"{n} {sweep_centre(model, by_name(n), register)}" for n in instruments)
          + f" (MIDI; register: {register})")
    print("   audio: re-extracted from the rendered audio (analysis model -> synthesis parameters -> note "
          "expression extractor)" if from_audio else "   audio: unavailable (no analysis.safetensors)")
    print("   audio+spec: the same, harmonic distribution and noise magnitudes measured from the audio's spectrum "
          "(no model)")
    print("   params: read from the generated synthesis parameters (does the generator follow the control?)")
    targets = {"volume": 0.9, "vibrato": 0.9, "brightness": 0.9}
    print(f"  {'control':<13} {'audio':>21} {'audio+spec':>21} {'params':>21}   target")
    sweeps = {}
    for c, name in enumerate(CONTROL_NAMES):
        routes = {"audio": {}, "audio+spec": {}, "params": {}}
        for inst_name in instruments:
            inst = by_name(inst_name)
            centre = sweep_centre(model, inst, register)
            notes = tuple(Note(centre + d, 1.2 * i, 1.2 * i + 0.9, 90) for i, d in enumerate((-5, -2, 0, 3, 5, 7)))
            seq = NoteSequence(notes, inst.name, "sweep")
            perfs = []
            for v in values:  # one voice per value, batched
                ctl = np.full((len(notes), 6), 0.5)
                ctl[:, c] = v
                perfs.append(Performance(seq, ctl))
            # sampled f0 (temperature 1, as rendered by default): greedy decoding of the autoregressive pitch
            # model gives flat curves, i.e. no vibrato whatever the control says
            params = model.synth_params(perfs, temperature=1.0, seed=0, progress=False)
            audio = model.audio(params, [inst.name] * len(perfs), seed=0, progress=False) if from_audio else None
            got = {k: [] for k in routes}
            for i, p in enumerate(params):
                got["params"] += list(model.extract_performance(None, model.sample_rate, seq, params=p).controls[:, c])
                if from_audio:
                    analysed = model.analyze(audio[i], model.sample_rate, seq.instrument)
                    for route, measured in (("audio", False), ("audio+spec", True)):
                        got[route] += list(model.extract_performance(
                            audio[i], model.sample_rate, seq, params=analysed,
                            measured=measured).controls[:, c])
            for k, v in got.items():
                if v:
                    routes[k][inst_name] = (np.repeat(values, len(notes)), np.asarray(v))

        def cell(per_inst) -> str:
            if not per_inst:
                return "-"
            pooled = pearson(np.concatenate([s for s, _ in per_inst.values()]),
                             np.concatenate([g for _, g in per_inst.values()]))
            each = [pearson(s, g) for s, g in per_inst.values()]
            return f"{pooled:6.3f} [{np.nanmin(each):.2f}..{np.nanmax(each):.2f}]"

        target = targets.get(name, 0.7)
        print(f"  {name:<13} {cell(routes['audio']):>21} {cell(routes['audio+spec']):>21} "
              f"{cell(routes['params']):>21}   >= {target}")
        sweeps[name] = routes
    if plot:
        plot_sweeps(sweeps, values, plot)
        print(f"  plot: {plot}")


def plot_sweeps(sweeps: dict, values: list[float], path: str) -> None:
    """One panel per control: mean re-extracted value per set value and instrument, for each route."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharex=True)
    styles = {"audio": ":", "audio+spec": "-", "params": "--"}
    for ax, (name, routes) in zip(axes.flat, sweeps.items()):
        for i, inst in enumerate(next(iter(r for r in routes.values() if r))):
            for route, style in styles.items():
                if inst in routes[route]:
                    s, g = routes[route][inst]
                    ax.plot(values, [g[s == v].mean() for v in values], style, color=f"C{i}",
                            label=f"{inst} ({route})" if name == "volume" else None)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("set")
        ax.set_ylabel("re-extracted")
    fig.legend(loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="model folder (default: checkpoints/, else random init)")
    p.add_argument("--durations", type=float, nargs="*", default=[60.0, 600.0], help="seconds of music")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--instruments", nargs="*", default=["violin", "flute", "trumpet", "cello"])
    p.add_argument("--values", type=float, nargs="*", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    p.add_argument("--plot", default=None, metavar="PNG", help="save the sweep curves (set vs re-extracted)")
    p.add_argument("--register", choices=("typical", "centre"), default="typical",
                   help="sweep notes around each instrument's mean training pitch (typical; needs the transfer "
                        "model's statistics, else centre) or the centre of its playable range")
    p.add_argument("--width", type=int, default=128, help="random-init width (when no checkpoint exists)")
    p.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_render(args.checkpoint, args.one, args.tmp)))
        return 0
    checkpoint = args.checkpoint
    tmp_ck = None
    if checkpoint is None:
        from midi_ddsp.pipeline import DEFAULT_CHECKPOINTS, GENERATOR_FILE, write_random_checkpoints

        if (DEFAULT_CHECKPOINTS / GENERATOR_FILE).is_file():
            checkpoint = str(DEFAULT_CHECKPOINTS)
        else:
            tmp_ck = tempfile.TemporaryDirectory()
            checkpoint = tmp_ck.name
            write_random_checkpoints(checkpoint, width=args.width, f0_hidden=128, reverb_length=48000,
                                     small_performance=False)
            print(f"NOTE: no trained weights in {DEFAULT_CHECKPOINTS}: RANDOM-INIT models (generator width "
                  f"{args.width}, f0 GRU 128, 3 s reverb, default-size expression model), so speed and memory are indicative and the control "
                  f"accuracy is meaningless; re-run with the trained checkpoints")
    print(f"model folder: {checkpoint}")
    if not args.skip_speed:
        speed(checkpoint, args.durations)
    if not args.skip_accuracy:
        accuracy(checkpoint, args.instruments, args.values, args.register, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
