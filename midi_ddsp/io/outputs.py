"""Output files checked before any work starts and written all-or-nothing as a group."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MidiDDSPError, OutputWriteError
from .atomic import commit, discard, make_temp
from .audio import encode_audio, write_error


class OutputSet:
    """A group of output files written all-or-nothing: each is written to a temporary file beside its
    destination (``.<name>.midi-ddsp-<pid>-<random>.tmp``); :meth:`commit` renames them all, :meth:`abort`
    (or leaving the ``with`` block on an error) removes them. Temporary files left by a killed process are
    removed by the next write into the same folder (:func:`~midi_ddsp.io.atomic.clean_stale`)."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, str]] = []

    def _temp(self, path: Path) -> str:
        tmp = make_temp(path)
        self._staged.append((Path(path), tmp))
        return tmp

    def audio(self, path: Path, audio: np.ndarray, sample_rate: int) -> None:
        encode_audio(self._temp(path), audio, sample_rate, Path(path).suffix, name=path)

    def text(self, path: Path, text: str) -> None:
        self.binary(path, text.encode("utf-8"))

    def binary(self, path: Path, data: bytes) -> None:
        tmp = self._temp(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            raise OutputWriteError(write_error(path, e)) from None

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

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            if issubclass(exc_type, OSError) and not isinstance(exc, OutputWriteError):
                raise OutputWriteError(f"cannot write the outputs ({exc.strerror or exc})") from None
        else:
            self.commit()


def check_output_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``path`` ends in one of ``suffixes`` and its folder exists and is writable (else a one-line error)."""
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


def check_output_dir(path: Path) -> Path:
    """``path`` is a folder, or one that can be created (its nearest existing ancestor is writable)."""
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


__all__ = ["OutputSet", "check_output_file", "check_output_dir"]
