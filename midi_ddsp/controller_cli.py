"""The ``render`` command's options for controllers, MIDI export and the soundfont fallback.

The command adds :func:`add_controller_args` to its parser, calls :func:`check_controller_args` before
loading the model (cheap mistakes first), renders with :func:`render_source`, and stages
:func:`midi_export_bytes` among its outputs. Knows nothing of tensors: it passes the render result through.
"""
from __future__ import annotations

import os
from pathlib import Path

from midi_ddsp.errors import MidiDDSPError, OutputWriteError

MIDI_SUFFIXES = (".mid", ".midi")


def add_controller_args(parser) -> None:
    """``--ignore-controllers``, ``--export-midi FILE`` and ``--fallback-soundfont [SF2]`` on the render parser."""
    parser.add_argument("--ignore-controllers", action="store_true",
                        help="ignore pitch bend, CC1/CC7/CC11 and sustain in the MIDI file (and read an exported "
                             "performance file as plain notes)")
    parser.add_argument("--export-midi", type=Path, metavar="FILE",
                        help="also write the performance as MIDI: notes, the six controls as CC curves, the f0 as "
                             "pitch bend and the loudness as CC11, to edit in a DAW and render again")
    parser.add_argument("--fallback-soundfont", nargs="?", const="auto", default=None, metavar="SF2",
                        help="render drum tracks and GM programs without a model (pianos, guitars, organs, ...) with "
                             "FluidSynth and this soundfont (default: the system's General-MIDI soundfont), mixed "
                             "with the neural voices")


def check_controller_args(args) -> None:
    """Validate the options before the model loads; one-line MidiDDSPErrors."""
    path = getattr(args, "export_midi", None)
    if path is not None:
        path = Path(path)
        if path.suffix.lower() not in MIDI_SUFFIXES:
            raise MidiDDSPError(f"{path}: --export-midi must end in .mid or .midi")
        if path.is_dir():
            raise OutputWriteError(f"{path}: is a folder, not a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputWriteError(f"{path}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputWriteError(f"{path}: output folder {parent} is not writable")
    if getattr(args, "fallback_soundfont", None) is not None:
        from midi_ddsp.sampler import check_sampler

        check_sampler(args.fallback_soundfont)


def render_source(model, given, source, args, keep=None):
    """Render for the command: a MIDI path (``given``) through
    :func:`~midi_ddsp.controller_render.render_midi` (controllers, exported performances, the fallback),
    anything else (the already read ``source``: a performance file) through ``model.render`` as before.
    Keeps the synthesis parameters when ``--export-midi`` needs them; resamples to ``--sample-rate``.

    Args:
        model: the loaded MidiDDSP; given: the path the user gave; source: what
            :func:`midi_ddsp.sources.read_source` read from it (instrument, pitch offset and speed applied).
        args: the render namespace (``instrument``, ``pitch_offset``, ``speed``, ``temperature``, ``seed``,
            ``dry``, ``sample_rate``, ``expression_temperature`` and the options of :func:`add_controller_args`).
        keep: the performances of ``--keep-performance`` (their notes keep their controls), or None.
    """
    params = getattr(args, "export_midi", None) is not None
    common = dict(temperature=args.temperature, seed=args.seed, reverb=not args.dry, keep_params=params,
                  progress=None, sample_rate=getattr(args, "sample_rate", None), keep=keep,
                  expression_temperature=getattr(args, "expression_temperature", None))
    if isinstance(given, (str, Path)) and Path(given).suffix.lower() not in (".csv", ".json"):
        from midi_ddsp.controller_render import render_midi
        from midi_ddsp.instruments import by_name

        instrument = by_name(args.instrument).name if getattr(args, "instrument", None) else None
        return render_midi(model, given, instrument=instrument, pitch_offset=args.pitch_offset, speed=args.speed,
                           stems=getattr(args, "stems", None) is not None,
                           controllers=not getattr(args, "ignore_controllers", False),
                           fallback_soundfont=getattr(args, "fallback_soundfont", None), **common)
    return model.render(source, **common, stems=getattr(args, "stems", None) is not None)


def midi_export_bytes(result, frame_rate: float) -> bytes:
    """The ``--export-midi`` file of a render result (its performances and synthesis parameters)."""
    from midi_ddsp.io.midi_export import export_midi_bytes

    return export_midi_bytes(result.performances, result.params, frame_rate)


def stem_names(result) -> list[tuple[str, str]]:
    """(label, instrument) per stem row: the neural voices, then the soundfont tracks (instrument
    ``"soundfont"``)."""
    from midi_ddsp.controller_render import stem_labels

    labels = stem_labels(result)
    out = []
    for i, label in enumerate(labels):
        inst = result.performances[i].instrument if i < len(result.performances) else "soundfont"
        out.append((label, inst))
    return out


__all__ = ["add_controller_args", "check_controller_args", "render_source", "midi_export_bytes", "stem_names"]
