"""``midi-ddsp analyze REC -o PERF.csv|.json --instrument NAME [--midi-out NOTES.mid]``: a monophonic recording
-> an editable performance file (:mod:`midi_ddsp.recording`).

Order of work, cheapest mistakes first: the outputs are checked, the instrument name and the model folder's
header are read (no weights), the audio is read and transcribed at the model's rate (bad recordings fail
here, before any weights load), then the model is loaded and measures the six controls. The performance is
written in the format of ``render --export-performance`` (CSV or JSON by extension); ``--midi-out`` adds an
editable MIDI file of the same performance (notes plus the six controls as CC lanes, see
:mod:`midi_ddsp.io.midi_export`), which ``render`` reads back as a performance too. All outputs are written
all-or-nothing.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .errors import CheckpointError, MidiDDSPError
from .io.outputs import OutputSet, check_output_file

PERFORMANCE_SUFFIXES = (".csv", ".json")
MIDI_SUFFIXES = (".mid", ".midi")


def add_analyze_parser(sub) -> None:
    """The ``analyze`` subparser on the CLI's subparsers object."""
    a = sub.add_parser("analyze", help="a monophonic recording -> an editable performance (notes + controls)",
                       description="Find the notes of a monophonic recording (pitch, onset, offset, velocity) and "
                                   "measure the six expression controls of each from the audio; write them as a "
                                   "performance file that `render --performance` re-renders (edit it in between).")
    a.add_argument("audio", type=Path, help="input recording (WAV, FLAC, OGG; any sample rate, mono or stereo)")
    a.add_argument("-o", "--output", type=Path, required=True, metavar="PERF",
                   help="output performance file, .csv or .json (the format of render --export-performance)")
    a.add_argument("--instrument", required=True,
                   help="the instrument playing (sets the pitch search range and the controls' scale)")
    a.add_argument("--midi-out", type=Path, default=None, metavar="FILE",
                   help="also write the notes (and the controls as CC lanes) as a MIDI file")
    a.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="model folder (default: the shipped checkpoints/)")


def _warn_lines(messages) -> None:
    for m in dict.fromkeys(messages):
        print(f"midi-ddsp: warning: {m}", file=sys.stderr)


def analyze(args) -> int:
    """Run ``midi-ddsp analyze`` for the argparse namespace ``args``; returns the exit code (0)."""
    from .instruments import by_name
    from .io.audio import read_audio
    from .model_files import inspect_folder
    from .recording import measure_performance, transcribe_recording

    t_start = time.perf_counter()
    out = check_output_file(args.output, PERFORMANCE_SUFFIXES, "the performance file (-o)")
    midi_out = (check_output_file(args.midi_out, MIDI_SUFFIXES, "--midi-out")
                if args.midi_out is not None else None)
    if midi_out is not None and Path(midi_out).resolve() == Path(out).resolve():
        raise MidiDDSPError(f"{out}: -o and --midi-out name the same file")
    instrument = by_name(args.instrument).name
    info = inspect_folder(args.checkpoint)
    if not info.models.get("analysis"):
        raise CheckpointError(f"{info.path}: no analysis model in the model folder (analyze measures the controls "
                              f"with it)")
    if instrument not in _folder_instruments(info):
        raise MidiDDSPError(f"{instrument}: not an instrument of the model in {info.path}")
    audio, sr_in = read_audio(args.audio)
    duration = audio.size / sr_in
    t0 = time.perf_counter()
    tr, feats, messages = transcribe_recording(audio, sr_in, instrument, analysis_rate=info.sample_rate,
                                               name=args.audio.stem)
    t_notes = time.perf_counter() - t0

    from .pipeline import MidiDDSP

    model = MidiDDSP.from_pretrained(args.checkpoint)
    t1 = time.perf_counter()
    perf, more = measure_performance(model, tr, feats)
    t_controls = time.perf_counter() - t1
    _warn_lines(messages + more)

    from .note_level.serialization import to_csv, to_json

    with OutputSet() as outputs:
        outputs.text(out, to_csv(perf) if out.suffix.lower() == ".csv" else to_json(perf))
        if midi_out is not None:
            from .io.midi_export import export_midi_bytes

            outputs.binary(midi_out, export_midi_bytes(perf, frame_rate=model.frame_rate))
    work = t_notes + t_controls
    also = f" and {midi_out}" if midi_out is not None else ""
    tuning = f", tuning {tr.tuning_cents:+.0f} cents" if abs(tr.tuning_cents) >= 1 else ""
    print(f"wrote {out}{also} ({len(perf)} note{'s' if len(perf) != 1 else ''} of {instrument} in "
          f"{duration:.1f} s of audio{tuning}) in {time.perf_counter() - t_start:.1f} s "
          f"(notes {t_notes:.1f} s, controls {t_controls:.1f} s = {duration / max(work, 1e-9):.0f}x real time)")
    return 0


def _folder_instruments(info) -> set[str]:
    from .instruments import INSTRUMENTS

    return {inst.name for inst in INSTRUMENTS[:info.n_instruments]}


__all__ = ["add_analyze_parser", "analyze"]
