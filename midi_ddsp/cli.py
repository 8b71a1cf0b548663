"""The ``midi-ddsp`` command. Thin: parses arguments, calls the Python API, reports errors in one line.

Every user mistake (missing or bad file, unknown instrument, unwritable output, bad config) prints one line
on stderr and exits with code 2; outputs are written to a temporary file and renamed only on success.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .errors import MidiDDSPError

EXIT_USER_ERROR = 2


def _add_level_args(p: argparse.ArgumentParser, fixed_gain: bool = False) -> None:
    """``--loudness`` / ``--no-normalize`` (see :mod:`midi_ddsp.loudness`), and ``--gain-db`` with
    ``fixed_gain``."""
    p.add_argument("--loudness", type=float, default=-16.0, metavar="LUFS",
                   help="output loudness, integrated LUFS (default -16; true peak kept <= -1 dBFS; one gain "
                        "for the mix and its stems)")
    p.add_argument("--no-normalize", action="store_true",
                   help="keep the models' raw level (only the mix's anti-clipping gain)")
    if not fixed_gain:
        return
    p.add_argument("--gain-db", type=float, default=None, metavar="DB",
                   help="a fixed gain (dB) on the models' raw output instead of loudness normalisation; every "
                        "render prints the gain it applied: give it again to re-render an edited performance at "
                        "exactly the same level (the file then changes only near the edit). Peaks over 0 dBFS "
                        "are clipped, with a warning")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="midi-ddsp",
        description="Render MIDI files as realistic instrument audio with note-level expression control.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("render", help="render a MIDI file to audio",
                       description="Render every voice of a MIDI file (GM program -> instrument) and mix them.")
    r.add_argument("midi", type=Path, nargs="?", help="input MIDI file (.mid); may be left out with --performance")
    r.add_argument("-o", "--output", type=Path, required=True, help="output WAV file of the mix")
    r.add_argument("--instrument", help="render every voice with this instrument (see `midi-ddsp instruments`)")
    r.add_argument("--stems", type=Path, metavar="DIR", help="also write one WAV per voice into DIR")
    r.add_argument("--pitch-offset", type=int, default=0, metavar="N", help="transpose by N semitones")
    r.add_argument("--speed", type=float, default=1.0, metavar="X", help="tempo factor; 2 plays twice as fast")
    r.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="sampling temperature of the pitch model (default 1) and, at half of it, of the expression "
                        "model; 0 = the typical performance, deterministic (pitch curves flat but for the vibrato the "
                        "controls ask)")
    r.add_argument("--expression-temperature", type=float, default=None, metavar="T",
                   help="sampling temperature of the expression model alone (default: half of --temperature; "
                        "1 = as trained, more varied takes)")
    r.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (same seed, same audio)")
    r.add_argument("--performance", type=Path, metavar="FILE",
                   help="use this performance (CSV or JSON from --export-performance, possibly edited) "
                        "instead of the MIDI file's notes and the expression model (the MIDI file is not read)")
    r.add_argument("--export-performance", type=Path, metavar="FILE",
                   help="write the performance (notes + six controls per note) as CSV or JSON (by extension)")
    r.add_argument("--keep-performance", type=Path, metavar="FILE",
                   help="with a MIDI file: its notes that stand in this performance file (same instrument, pitch, "
                        "velocity and times within 1 ms) keep their controls there; the expression model "
                        "performs only the others, so an edited MIDI file re-renders only near its edits")
    r.add_argument("--dry", action="store_true", help="no reverb (the dry synthesizer output)")
    _add_level_args(r, fixed_gain=True)
    r.add_argument("--sample-rate", type=int, default=None, metavar="SR",
                   help="output sample rate in Hz (default: the model folder's rate; other rates are resampled)")
    r.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="model folder (default: the shipped checkpoints/)")
    from .controller_cli import add_controller_args

    add_controller_args(r)

    t = sub.add_parser("transfer", help="timbre transfer of a monophonic recording",
                       description="Re-synthesize a monophonic recording's pitch and loudness as another instrument.")
    t.add_argument("audio", type=Path, help="input audio file (WAV, FLAC, OGG; any sample rate)")
    t.add_argument("-o", "--output", type=Path, required=True, help="output WAV file")
    t.add_argument("--instrument", required=True, help="target instrument (see `midi-ddsp instruments`)")
    t.add_argument("--octave-shift", type=int, default=0, metavar="N", help="shift the pitch by N octaves")
    t.add_argument("--auto-octave", action="store_true",
                   help="shift by whole octaves towards the instrument's usual range")
    t.add_argument("--loudness-shift", type=float, default=0.0, metavar="DB", help="adjust loudness by DB decibels")
    t.add_argument("--no-adjust", action="store_true",
                   help="keep the recording's own loudness (by default the loudness of its notes is mapped onto "
                        "the instrument's typical loudness, as DDSP's timbre-transfer demo does)")
    t.add_argument("--dry", action="store_true", help="no reverb")
    _add_level_args(t)
    t.add_argument("--sample-rate", type=int, default=None, metavar="SR", help="output sample rate in Hz")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="random seed of the noise source")
    t.add_argument("--checkpoint", type=Path, default=None, metavar="DIR", help="model folder")

    from .analyze_command import add_analyze_parser

    add_analyze_parser(sub)

    i = sub.add_parser("instruments", help="list the instruments of the loaded model with their ranges")
    i.add_argument("--checkpoint", type=Path, default=None, metavar="DIR", help="model folder")

    tr = sub.add_parser("train", help="train one stage (Hydra overrides, e.g. stage=analysis trainer=gpu)",
                        description="Train one stage from conf/train.yaml. Arguments are Hydra overrides.")
    tr.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stage=generator trainer.devices=2")
    tr.add_argument("--config-dir", type=Path, default=None, help="config folder (default: the repository's conf/)")

    dt = sub.add_parser("dump-targets", help="make the generator's and the expression model's training targets "
                        "from a feature cache: measured from the audio, or read by a trained analysis model")
    dt.add_argument("--cache-dir", type=Path, default=Path("cache/corpus48"), help="feature cache folder")
    dt.add_argument("--analysis", type=Path, default=None, metavar="FILE",
                    help="read the synthesis parameters with this trained analysis model (safetensors); default: "
                         "measure them from the audio's spectrum at the tracked f0 (no model)")
    dt.add_argument("--workers", type=int, default=2, metavar="N", help="processes for the measuring (default 2)")
    dt.add_argument("--out", type=Path, default=Path("runs/targets48"), help="output folder")

    pk = sub.add_parser("package", help="assemble a model folder (float16 safetensors) from trained runs")
    pk.add_argument("--runs", type=Path, default=Path("runs"), help="folder with the stage runs")
    pk.add_argument("--cache-dir", type=Path, default=Path("cache/corpus"), help="training feature cache "
                    "(for the per-instrument loudness/pitch statistics used by timbre transfer)")
    pk.add_argument("--out", type=Path, default=Path("checkpoints"), help="output model folder")

    from .studio.command import add_studio_parser

    add_studio_parser(sub)

    d = sub.add_parser("data", help="build a training corpus, cache features, dump training targets, report",
                       add_help=False)
    d.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:  # everything after `data` is the data tool's (argparse.REMAINDER drops --help)
        args = argparse.Namespace(command="data", args=list(argv[1:]))
    else:
        args = _parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return _dispatch(args)
    except MidiDDSPError as e:
        print(f"midi-ddsp: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("midi-ddsp: interrupted", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    if args.command == "data":
        from .data.cli import main as data_main

        return data_main(args.args)
    if args.command == "train":
        from .training.config import load_config
        from .training.runner import run

        cfg = load_config(args.overrides, args.config_dir)
        result = run(cfg)
        if result.trainer.is_global_zero:
            print(f"weights: {result.export_path}")
        return 0
    if args.command == "dump-targets":
        from .data.datasets import split_of
        from .training.targets import dump_targets

        if args.workers < 1:
            raise MidiDDSPError(f"--workers must be at least 1, got {args.workers}")
        summary = dump_targets(args.cache_dir, args.analysis, args.out,
                               lambda e: split_of(e.get("group") or e["id"]), n_workers=args.workers)
        print(f"targets: {args.out} ({summary})")
        return 0
    if args.command == "studio":
        from .studio.command import cmd_studio

        return cmd_studio(args)
    if args.command == "package":
        from .training.package import package

        for path in package(args.runs, args.cache_dir, args.out):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    from . import commands

    return getattr(commands, args.command)(args)


if __name__ == "__main__":
    sys.exit(main())
