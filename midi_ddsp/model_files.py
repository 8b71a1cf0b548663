"""Model files and folders without torch: the folder layout, and what a file's safetensors header says.

A safetensors file starts with an 8-byte little-endian header length and a JSON header (tensor names,
dtypes, shapes, and the ``__metadata__`` strings written by :func:`midi_ddsp.checkpoint.save_weights`), so a
folder can be described (rate, instruments, which models) without loading any weights.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._paths import shipped
from .errors import CheckpointError
from .instruments import NAMES

FORMAT = "midi-ddsp"
DEFAULT_CHECKPOINTS = shipped("checkpoints")  # the repository's, or the installed package's copy
GENERATOR_FILE = "generator.safetensors"
PERFORMANCE_FILE = "performance.safetensors"
TRANSFER_FILE = "transfer.safetensors"
ANALYSIS_FILE = "analysis.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # checked before reading: a corrupt length must not allocate


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_metadata(path: str | Path, metadata: dict[str, str], kind: str) -> tuple[dict, dict]:
    """Validate a model file's metadata (format, kind, instrument list): ``(config, extra)``.

    Raises:
        CheckpointError: not a midi-ddsp file, wrong kind, corrupt metadata, or another instrument list.
    """
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a midi-ddsp model file (no midi-ddsp metadata)")
    if metadata.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {metadata.get('kind')!r} model, expected {kind!r}")
    try:
        config = json.loads(metadata["config"])
        instruments = json.loads(metadata.get("instruments", "[]"))
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt model metadata ({_first_line(e)})") from None
    if list(instruments) != list(NAMES):
        raise CheckpointError(f"{path}: trained for instruments {instruments}, but this code knows {list(NAMES)}")
    return config, extra


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor entries + ``__metadata__``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("file too short")
            (n,) = struct.unpack("<Q", raw)
            if n > min(MAX_HEADER_BYTES, path.stat().st_size - 8):
                raise ValueError("header length out of range")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors model file ({_first_line(e)})") from None
    return header


@dataclass
class FolderInfo:
    """What a model folder holds, read from the files' headers (no weights loaded).

    Attributes:
        sample_rate, frame_rate: Hz (the generator's config); n_instruments: rows of its instrument table;
        models: which optional models are present (``performance``, ``transfer``, ``analysis``).
    """

    path: Path
    sample_rate: int
    frame_rate: float
    n_instruments: int
    models: dict[str, bool] = field(default_factory=dict)


def locate(path: str | Path | None = None) -> tuple[Path, Path]:
    """``(folder, generator file)`` of a model folder (default: the shipped ``checkpoints/``).

    Raises:
        CheckpointError: no such folder, or no generator file in it.
    """
    folder = Path(path) if path is not None else DEFAULT_CHECKPOINTS
    if not folder.is_dir():
        hint = " (the shipped weights are not installed; pass a model folder)" if path is None else ""
        raise CheckpointError(f"{folder}: model folder not found{hint}")
    gen = folder / GENERATOR_FILE
    if not gen.is_file():
        raise CheckpointError(f"{folder}: no {GENERATOR_FILE} in the model folder")
    return folder, gen


def inspect_folder(path: str | Path | None = None) -> FolderInfo:
    """Describe a model folder (default: the shipped ``checkpoints/``) from its headers.

    Raises:
        CheckpointError: no such folder, no generator, or an unreadable or mismatched generator file.
    """
    folder, gen = locate(path)
    header = read_header(gen)
    config, _ = check_metadata(gen, header.get("__metadata__") or {}, "generator")
    table = header.get("model.instrument.weight", {}).get("shape")
    if "sample_rate" not in config or not table:
        raise CheckpointError(f"{gen}: no sample_rate or instrument table in the generator file")
    models = {name: (folder / f).is_file() for name, f in
              (("performance", PERFORMANCE_FILE), ("transfer", TRANSFER_FILE), ("analysis", ANALYSIS_FILE))}
    return FolderInfo(folder, int(config["sample_rate"]), float(config.get("frame_rate", 250.0)), int(table[0]),
                      models)


__all__ = ["FolderInfo", "inspect_folder", "locate", "read_header", "check_metadata", "DEFAULT_CHECKPOINTS", "GENERATOR_FILE",
           "PERFORMANCE_FILE", "TRANSFER_FILE", "ANALYSIS_FILE", "FORMAT"]
