"""``midi-ddsp studio [MIDI] [--port N] [--host 127.0.0.1] [--no-browser] [--checkpoint DIR]``.

:func:`add_studio_parser` adds the sub-command to the CLI's parser (it imports nothing optional);
:func:`cmd_studio` runs it. Without the ``studio`` extra installed it fails with one line saying what to install.
"""
from __future__ import annotations

import argparse
import sys
import threading
import webbrowser
from pathlib import Path

from midi_ddsp.errors import MidiDDSPError

DEFAULT_PORT = 8765


def add_studio_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``studio`` to an ``argparse`` sub-parsers object; returns its parser."""
    s = subparsers.add_parser(
        "studio", help="open the browser editor (piano roll, per-note expression, playback)",
        description="Start the studio, a local web page to edit a performance note by note and hear it. "
                    "Listens on 127.0.0.1 (this machine only) unless --host says otherwise. Without MIDI, "
                    "resumes the autosaved session (or opens the bundled example).")
    s.add_argument("midi", type=Path, nargs="?", help="a MIDI file, or a performance .csv/.json, to open")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                   help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; anything else exposes the studio to the network)")
    s.add_argument("--no-browser", action="store_true", help="do not open the page in a web browser")
    s.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="model folder (default: the shipped checkpoints/)")
    s.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                   help="folder for the autosaved session and render cache (default ~/.cache/midi-ddsp/studio)")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="random seed of the renders (default 0)")
    s.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="temperature of the pitch model in renders (default 1)")
    return s


def cmd_studio(args) -> int:
    """Run the studio until interrupted (Ctrl+C). Returns the exit code."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MidiDDSPError("install the studio extra: pip install -e '.[studio]'") from None
    if not 0 <= args.port <= 65535:
        raise MidiDDSPError(f"--port {args.port}: expected 0..65535")
    from midi_ddsp.pipeline import MidiDDSP

    from .server import StudioServer, host_warning
    from .session import Session

    warning = host_warning(args.host)
    if warning:
        print(f"midi-ddsp: {warning}", file=sys.stderr)
    model = MidiDDSP.from_pretrained(args.checkpoint)
    session = Session(model, args.workdir, seed=args.seed, temperature=args.temperature)
    server = StudioServer(session, args.host, args.port)  # bind first: a busy port fails before rendering
    print(f"midi-ddsp studio: {session.start(args.midi)}", file=sys.stderr)
    where = "this machine only" if warning is None else "the network"
    print(f"midi-ddsp studio: {server.url} (listening on {args.host}:{server.port}, {where}; Ctrl+C stops)",
          file=sys.stderr)
    if not args.no_browser:
        threading.Timer(0.5, webbrowser.open, args=(server.url,)).start()
    server.run()
    return 0


__all__ = ["add_studio_parser", "cmd_studio", "DEFAULT_PORT"]
