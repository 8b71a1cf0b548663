"""The ``midi-ddsp`` subcommands ``render``, ``transfer``, ``analyze`` and ``instruments`` (parsed by
:mod:`midi_ddsp.cli`).

Each takes the argparse namespace, checks the outputs and reads the input before the model is loaded (cheap
mistakes are reported first), calls the API and writes the files it returns, all-or-nothing
(:class:`~midi_ddsp.io.outputs.OutputSet`). Every user mistake raises a
:class:`~midi_ddsp.errors.MidiDDSPError`, which the CLI prints as one line with exit code 2; non-fatal problems
are printed as ``midi-ddsp: warning: ...`` lines.
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
import warnings

from . import limits
from .errors import MidiDDSPError, MidiDDSPWarning
from .io.audio import FORMATS
from .io.outputs import OutputSet, check_output_dir, check_output_file

# Before torch is imported: OpenMP threads that sleep instead of spinning while they wait. On a busy machine
# (cores shared with other processes) spinning threads made renders 5-10x slower; override by setting it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

AUDIO_SUFFIXES = tuple(FORMATS)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000


def _check_sample_rate(sample_rate) -> None:
    if sample_rate is not None and not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise MidiDDSPError(
            f"--sample-rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sample_rate}")


def _warn_lines(messages) -> None:
    for m in dict.fromkeys(messages):
        print(f"midi-ddsp: warning: {m}", file=sys.stderr)


MAX_GAIN_DB = 120.0


def _level_target(args) -> float | str | None:
    """The output loudness asked for (LUFS), ``"fixed"`` with ``--gain-db``, or None with ``--no-normalize``."""
    from .loudness import check_target

    gain_db = getattr(args, "gain_db", None)
    if gain_db is not None:
        if getattr(args, "no_normalize", False):
            raise MidiDDSPError("--gain-db and --no-normalize exclude each other: give one")
        if not (math.isfinite(gain_db) and abs(gain_db) <= MAX_GAIN_DB):
            raise MidiDDSPError(f"--gain-db must be a number of dB within +-{MAX_GAIN_DB:g}, got {gain_db}")
        return "fixed"
    return None if getattr(args, "no_normalize", False) else check_target(getattr(args, "loudness", -16.0))


def _leveled(mix, stems, sample_rate: int, target: float | str | None, raw_gain: float = 1.0,
             gain_db: float | None = None):
    """``(mix, stems, description)`` at the target loudness (one gain; :mod:`midi_ddsp.loudness`), as they
    are with ``target`` None, or ``gain_db`` above the models' raw output (``mix / raw_gain``) with ``"fixed"``.
    The description names the gain over the raw output, so that ``--gain-db`` can repeat it."""
    import numpy as np

    from .loudness import Profile, describe, normalize

    def over_raw(linear: float) -> str:
        return f"gain {20 * math.log10(max(linear, 1e-12)):+.2f} dB"

    if target is None or target == "fixed":
        if target == "fixed":
            g = np.float32(10 ** (gain_db / 20) / raw_gain)
            for x in (mix, stems):
                if x is not None:
                    x *= g
            peak = float(np.abs(mix).max()) if mix.size else 0.0
            if peak > 1.0:
                print(f"midi-ddsp: warning: --gain-db {gain_db:g} takes the peaks to {20 * math.log10(peak):+.1f} "
                      f"dBFS: clipped (a lower --gain-db avoids it)", file=sys.stderr)
                for x in (mix, stems):
                    if x is not None:
                        np.clip(x, -1.0, 1.0, out=x)
        prof = Profile.of(mix, sample_rate)
        lufs, tp = prof.lufs(), prof.true_peak()
        head = f"{over_raw(10 ** (gain_db / 20))} (fixed), " if target == "fixed" else "raw level "
        text = head + (f"{lufs:.1f} LUFS" if math.isfinite(lufs) else "silent")
        return mix, stems, text + (f", true peak {20 * math.log10(tp):.1f} dBFS" if tp > 0 else "")
    mix, stems, level = normalize(mix, stems, sample_rate, target, copy=False)
    return mix, stems, describe(level) + f", {over_raw(level.gain.value * raw_gain)}"


def _speed(audio_s: float, compute_s: float) -> str:
    """``12x`` / ``0.35x``: seconds of audio per second of computing (two significant digits below 10)."""
    ratio = audio_s / max(compute_s, 1e-9)
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "voice"


def _load(checkpoint):
    from .pipeline import MidiDDSP

    return MidiDDSP.from_pretrained(checkpoint)


# ------------------------------------------------------------------------------------------------- render
def render(args) -> int:
    """``midi-ddsp render IN.mid -o OUT.wav [...]``."""
    from .instruments import by_name
    from .note_level.serialization import to_csv, to_json
    from .controller_cli import check_controller_args, midi_export_bytes, render_source, stem_names
    from .sources import read_source

    t_start = time.perf_counter()
    out = check_output_file(args.output, AUDIO_SUFFIXES, "the output file")
    stems_dir = check_output_dir(args.stems) if args.stems is not None else None
    export = (check_output_file(args.export_performance, (".csv", ".json"), "--export-performance")
              if args.export_performance is not None else None)
    _check_sample_rate(args.sample_rate)
    limits.check_speed(args.speed, "--speed")
    limits.check_temperature(args.temperature, "--temperature")
    if args.expression_temperature is not None:
        limits.check_temperature(args.expression_temperature, "--expression-temperature")
    target = _level_target(args)
    instrument = by_name(args.instrument).name if args.instrument else None
    messages: list[str] = []
    if args.performance is not None:
        given = args.performance
        if args.midi is not None:
            messages.append(f"{args.midi}: not read; the notes come from --performance {args.performance}")
    elif args.midi is not None:
        given = args.midi
    else:
        raise MidiDDSPError("give a MIDI file to render (or --performance FILE)")
    kept = None
    if args.keep_performance is not None:
        if args.performance is not None:
            raise MidiDDSPError("--keep-performance goes with a MIDI file; with --performance every note keeps its "
                                "controls already: give one of them")
        from .io.performance_files import load_performances

        kept = load_performances(args.keep_performance)
    check_controller_args(args)
    source = read_source(given, instrument, args.pitch_offset, args.speed)  # bad input fails before the model loads

    t_load = time.perf_counter()
    model = _load(args.checkpoint)
    startup = time.perf_counter() - t_load  # imports (torch, ...) + model load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MidiDDSPWarning)
        result = render_source(model, given, source, args, kept)
    messages += [str(w.message) for w in caught if issubclass(w.category, MidiDDSPWarning)]
    _warn_lines(messages)

    sr = result.sample_rate
    mix, stem_rows, level = _leveled(result.mix, result.stems if stems_dir is not None else None, sr, target,
                                     float(result.gain), args.gain_db)
    with OutputSet() as outputs:
        outputs.audio(out, mix, sr)
        if stems_dir is not None:
            stems_dir.mkdir(parents=True, exist_ok=True)
            for i, ((label, inst), audio) in enumerate(zip(stem_names(result), stem_rows)):
                name = f"{i + 1:02d}_{_safe_name(label or 'voice')}_{_safe_name(inst)}"
                outputs.audio(stems_dir / (name + out.suffix.lower()), audio, sr)
        if args.export_midi is not None:
            outputs.binary(args.export_midi, midi_export_bytes(result, model.frame_rate))
        if export is not None:
            text = to_csv(result.performances) if export.suffix.lower() == ".csv" else to_json(result.performances)
            outputs.text(export, text)
    total = time.perf_counter() - t_start
    render_s = result.timings.get("total", 0.0)
    print(f"wrote {out} ({result.duration_s:.1f} s, {len(result.performances)} voice"
          f"{'s' if len(result.performances) != 1 else ''}, {sr} Hz"
          f", {level}) in {total:.1f} s "
          f"(imports and model load {startup:.1f} s, of which model load {model.load_time_s:.1f} s; "
          f"render {render_s:.1f} s = {_speed(result.duration_s, render_s)} real time)")
    return 0


# ----------------------------------------------------------------------------------------------- transfer
def transfer(args) -> int:
    """``midi-ddsp transfer IN.wav -o OUT.wav --instrument NAME [...]``."""
    from .instruments import by_name
    from .io.audio import read_audio

    out = check_output_file(args.output, AUDIO_SUFFIXES, "the output file")
    _check_sample_rate(args.sample_rate)
    if not math.isfinite(args.loudness_shift):
        raise MidiDDSPError(f"--loudness-shift must be a number of dB, got {args.loudness_shift}")
    instrument = by_name(args.instrument).name
    target = _level_target(args)
    audio, sr_in = read_audio(args.audio)
    limits.check_transfer_input(len(audio), sr_in)  # before the model loads
    model = _load(args.checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MidiDDSPWarning)
        result = model.transfer(audio, sr_in, instrument, octave_shift=args.octave_shift,
                                auto_octave=args.auto_octave, loudness_shift_db=args.loudness_shift, dry=args.dry,
                                adjust=not getattr(args, "no_adjust", False), seed=args.seed, peak=0.99,
                                output_rate=args.sample_rate)
    _warn_lines([str(w.message) for w in caught if issubclass(w.category, MidiDDSPWarning)])
    audio_out, _, level = _leveled(result.audio, None, result.sample_rate, target)
    with OutputSet() as outputs:
        outputs.audio(out, audio_out, result.sample_rate)
    shift = f", octave shift {result.octave_shift:+d}" if result.octave_shift else ""
    print(f"wrote {out} ({len(result.audio) / result.sample_rate:.1f} s as {instrument}{shift}, {level})")
    return 0


# ------------------------------------------------------------------------------------------------ analyze
def analyze(args) -> int:
    """``midi-ddsp analyze REC -o PERF.csv --instrument NAME [...]`` (:mod:`midi_ddsp.analyze_command`)."""
    from .analyze_command import analyze as analyze_recording_command

    return analyze_recording_command(args)


# -------------------------------------------------------------------------------------------- instruments
def instruments(args) -> int:
    """``midi-ddsp instruments``: the model folder's instruments with their usual ranges (read from the files'
    headers: no weights are loaded)."""
    from .instruments import INSTRUMENTS
    from .io.midi import note_name
    from .model_files import inspect_folder

    info = inspect_folder(args.checkpoint)
    print(f"model: {info.path} ({info.sample_rate} Hz)")
    print(f"{'id':>2}  {'instrument':<12} {'GM program':>10}  range")
    for inst in INSTRUMENTS[:info.n_instruments]:
        print(f"{inst.id:>2}  {inst.name:<12} {inst.program + 1:>10}  {note_name(inst.low)}-{note_name(inst.high)} "
              f"(MIDI {inst.low}-{inst.high})")
    names = {"performance": "expression model", "transfer": "timbre transfer", "analysis": "analysis"}
    missing = [names[k] for k, present in info.models.items() if not present]
    if missing:
        print(f"not in this model folder: {', '.join(missing)}")
    return 0
