"""The ``midi-ddsp`` subcommands ``render``, ``transfer`` and ``instruments`` (parsed by :mod:`midi_ddsp.cli`).

Each takes the argparse namespace and returns an exit code. Inputs are validated before the model is loaded
(cheap mistakes are reported first); every user mistake raises a :class:`~midi_ddsp.errors.MidiDDSPError`,
which the CLI prints as one line with exit code 2. Outputs are rendered completely in memory, written to
temporary files beside their destinations and renamed only when every one of them was written, so a failed
command leaves no output file behind. Non-fatal problems are printed as ``midi-ddsp: warning: ...`` lines.
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import MidiDDSPError, MidiDDSPWarning, OutputWriteError
from .io.atomic import commit, discard, make_temp
from .io.audio import FORMATS, encode_audio

# Before torch is imported: OpenMP threads that sleep instead of spinning while they wait. On a busy machine
# (cores shared with other processes) spinning threads made renders 5-10x slower; override by setting it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

AUDIO_SUFFIXES = tuple(FORMATS)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000


# ------------------------------------------------------------------------------------------ output files
class _Outputs:
    """A group of output files written all-or-nothing (temporary files, renamed together at the end)."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, str]] = []

    def _temp(self, path: Path) -> str:
        tmp = make_temp(path)
        self._staged.append((path, tmp))
        return tmp

    def audio(self, path: Path, audio: np.ndarray, sample_rate: int) -> None:
        encode_audio(self._temp(path), audio, sample_rate, path.suffix)

    def text(self, path: Path, text: str) -> None:
        tmp = self._temp(path)
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            raise OutputWriteError(f"{path}: cannot write ({e.strerror or e})") from None

    def commit(self) -> None:
        try:
            for path, tmp in self._staged:
                commit(tmp, path)
        finally:
            self.abort()

    def abort(self) -> None:
        for _, tmp in self._staged:
            discard(tmp)
        self._staged = []


def _check_output_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise MidiDDSPError(f"{path}: {what} must end in {', '.join(suffixes)}")
    if path.is_dir():
        raise OutputWriteError(f"{path}: is a folder, not a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputWriteError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputWriteError(f"{path}: output folder {parent} is not writable")
    return path


def _check_output_dir(path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputWriteError(f"{path}: exists and is not a folder")
    probe = path
    while not probe.exists():  # the nearest existing ancestor must let us create the folder
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputWriteError(f"{path}: cannot create or write this folder")
    return path


def _check_sample_rate(sample_rate) -> None:
    if sample_rate is not None and not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise MidiDDSPError(
            f"--sample-rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sample_rate}")


def _resampled(audio: np.ndarray, from_rate: int, to_rate: int | None) -> np.ndarray:
    if to_rate is None or to_rate == from_rate:
        return audio
    from .io.audio import resample

    out = resample(audio, from_rate, to_rate)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out / peak if peak > 1.0 else out  # resampling can overshoot a peak-limited signal slightly


def _warn_lines(messages) -> None:
    for m in dict.fromkeys(messages):
        print(f"midi-ddsp: warning: {m}", file=sys.stderr)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "voice"


def _load(checkpoint):
    from .pipeline import MidiDDSP

    return MidiDDSP.from_pretrained(checkpoint)


# ------------------------------------------------------------------------------------------------- render
def render(args) -> int:
    """``midi-ddsp render IN.mid -o OUT.wav [...]``."""
    from .instruments import by_name
    from .io.midi import load_midi
    from .note_level.serialization import load_performances, to_csv, to_json

    t_start = time.perf_counter()
    out = _check_output_file(args.output, AUDIO_SUFFIXES, "the output file")
    stems_dir = _check_output_dir(args.stems) if args.stems is not None else None
    export = (_check_output_file(args.export_performance, (".csv", ".json"), "--export-performance")
              if args.export_performance is not None else None)
    _check_sample_rate(args.sample_rate)
    if not (math.isfinite(args.speed) and args.speed > 0):
        raise MidiDDSPError(f"--speed must be a positive number, got {args.speed}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise MidiDDSPError(f"--temperature must be >= 0, got {args.temperature}")
    instrument = by_name(args.instrument).name if args.instrument else None
    messages: list[str] = []
    if args.performance is not None:
        source = load_performances(args.performance)
        if args.midi is not None:
            messages.append(f"{args.midi}: not read; the notes come from --performance {args.performance}")
    elif args.midi is not None:
        load_midi(args.midi, instrument, None, args.pitch_offset, args.speed)  # bad input fails before the model loads
        source = args.midi
    else:
        raise MidiDDSPError("give a MIDI file to render (or --performance FILE)")

    t_load = time.perf_counter()
    model = _load(args.checkpoint)
    startup = time.perf_counter() - t_load  # imports (torch, ...) + model load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MidiDDSPWarning)
        result = model.render(source, instrument=instrument, pitch_offset=args.pitch_offset, speed=args.speed,
                              temperature=args.temperature, seed=args.seed, reverb=not args.dry,
                              keep_params=False, progress=None)
    messages += [str(w.message) for w in caught if issubclass(w.category, MidiDDSPWarning)]
    _warn_lines(messages)

    sr = args.sample_rate or result.sample_rate
    outputs = _Outputs()
    try:
        outputs.audio(out, _resampled(result.mix, result.sample_rate, args.sample_rate), sr)
        if stems_dir is not None:
            stems_dir.mkdir(parents=True, exist_ok=True)
            for i, (perf, audio) in enumerate(zip(result.performances, result.stems)):
                name = f"{i + 1:02d}_{_safe_name(perf.name or 'voice')}_{_safe_name(perf.instrument)}"
                outputs.audio(stems_dir / (name + out.suffix.lower()),
                              _resampled(audio, result.sample_rate, args.sample_rate), sr)
        if export is not None:
            text = to_csv(result.performances) if export.suffix.lower() == ".csv" else to_json(result.performances)
            outputs.text(export, text)
        outputs.commit()
    except OSError as e:
        outputs.abort()
        raise OutputWriteError(f"cannot write the outputs ({e.strerror or e})") from None
    except BaseException:
        outputs.abort()
        raise
    total = time.perf_counter() - t_start
    render_s = result.timings.get("total", 0.0)
    print(f"wrote {out} ({result.duration_s:.1f} s, {len(result.performances)} voice"
          f"{'s' if len(result.performances) != 1 else ''}, {sr} Hz"
          f"{', gain %.2f' % result.gain if result.gain < 1.0 else ''}) in {total:.1f} s "
          f"(imports and model load {startup:.1f} s, of which model load {model.load_time_s:.1f} s; "
          f"render {render_s:.1f} s = {result.duration_s / max(render_s, 1e-9):.0f}x real time)")
    return 0


# ----------------------------------------------------------------------------------------------- transfer
def transfer(args) -> int:
    """``midi-ddsp transfer IN.wav -o OUT.wav --instrument NAME [...]``."""
    from .instruments import by_name
    from .io.audio import read_audio

    out = _check_output_file(args.output, AUDIO_SUFFIXES, "the output file")
    _check_sample_rate(args.sample_rate)
    if not math.isfinite(args.loudness_shift):
        raise MidiDDSPError(f"--loudness-shift must be a number of dB, got {args.loudness_shift}")
    instrument = by_name(args.instrument).name
    audio, sr_in = read_audio(args.audio)
    model = _load(args.checkpoint)
    result = model.transfer(audio, sr_in, instrument, octave_shift=args.octave_shift, auto_octave=args.auto_octave,
                            loudness_shift_db=args.loudness_shift, dry=args.dry,
                            adjust=not getattr(args, "no_adjust", False), seed=args.seed)
    y = result.audio
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    sr = args.sample_rate or result.sample_rate
    outputs = _Outputs()
    try:
        outputs.audio(out, _resampled(y, result.sample_rate, args.sample_rate), sr)
        outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    shift = f", octave shift {result.octave_shift:+d}" if result.octave_shift else ""
    print(f"wrote {out} ({len(y) / result.sample_rate:.1f} s as {instrument}{shift})")
    return 0


# -------------------------------------------------------------------------------------------- instruments
def instruments(args) -> int:
    """``midi-ddsp instruments``: the loaded model's instruments with their usual ranges."""
    from .io.midi import note_name

    model = _load(args.checkpoint)
    print(f"model: {model.path}")
    print(f"{'id':>2}  {'instrument':<12} {'GM program':>10}  range")
    for inst in model.instruments():
        print(f"{inst.id:>2}  {inst.name:<12} {inst.program + 1:>10}  {note_name(inst.low)}-{note_name(inst.high)} "
              f"(MIDI {inst.low}-{inst.high})")
    extra = [n for n, m in (("expression model", model.performance_model), ("timbre transfer", model.transfer_model),
                            ("analysis", model.analysis_model)) if m is None]
    if extra:
        print(f"not in this model folder: {', '.join(extra)}")
    return 0
