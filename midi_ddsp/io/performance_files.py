"""Performance files (``.csv`` / ``.json``, format by suffix): read and write, atomically.

The text forms are defined in :mod:`midi_ddsp.note_level.serialization`; this module only touches files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import PerformanceFileError
from ..note_level.notes import Performance
from ..note_level.serialization import from_csv, from_json, to_csv, to_json
from .atomic import atomic_write


def save_performances(performances: Performance | Iterable[Performance], path) -> Path:
    """Write a ``.csv`` or ``.json`` file (by suffix), atomically (temporary file, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise PerformanceFileError(f"{path}: performance files end in .csv or .json")
    text = to_csv(performances) if suffix == ".csv" else to_json(performances)
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def load_performances(path) -> list[Performance]:
    """Read a ``.csv`` or ``.json`` performance file (format by suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise PerformanceFileError(f"{path}: performance files end in .csv or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PerformanceFileError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise PerformanceFileError(f"{path}: not a text file (UTF-8 expected)") from None
    except OSError as e:
        raise PerformanceFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return from_csv(text, str(path)) if suffix == ".csv" else from_json(text, str(path))


__all__ = ["save_performances", "load_performances"]
