"""Safe model files: safetensors weights + a JSON config, written atomically, validated on load.

A model file is one ``.safetensors`` file whose metadata holds:
- ``format``: ``"midi-ddsp"``;
- ``kind``: what the weights are (``"analysis"``, ``"generator"``, ``"performance"``, ...);
- ``config``: the JSON constructor arguments of the model;
- ``instruments``: the JSON list of instrument names the model was trained on (checked against the code).
Loading never unpickles anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .errors import CheckpointError
from .io.atomic import atomic_write
from .instruments import NAMES
from .model_files import FORMAT, _first_line, check_metadata

__all__ = ["CheckpointError", "save_weights", "load_weights", "load_into", "safe_torch_load", "construct", "FORMAT"]


def save_weights(path: str | Path, tensors: dict[str, Tensor], kind: str, config: dict[str, Any],
                 extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write ``tensors`` + metadata to ``path`` atomically (temporary file, then rename).

    Args:
        half: store floating-point tensors as float16 (they are restored to float32 on load).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if half and v.is_floating_point() else v
    metadata = {"format": FORMAT, "kind": kind, "config": json.dumps(config), "instruments": json.dumps(list(NAMES))}
    if extra:
        metadata["extra"] = json.dumps(extra)
    with atomic_write(path) as tmp:
        save_file(out, tmp, metadata=metadata)
    return path


def load_weights(path: str | Path, kind: str) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """Read a model file written by :func:`save_weights`.

    Returns:
        (tensors as float32 where floating, config, extra).
    Raises:
        CheckpointError: missing, unreadable/corrupt/truncated, not a midi-ddsp file, wrong kind, or trained
            for a different instrument list.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors model file ({_first_line(e)})") from None
    config, extra = check_metadata(path, metadata, kind)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors, config, extra


def load_into(module: nn.Module, tensors: dict[str, Tensor], path: str | Path) -> None:
    """``module.load_state_dict(tensors)`` with a one-line error for missing/unexpected/mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k} is {tuple(tensors[k].shape)}, model expects {tuple(own[k].shape)}")
        raise CheckpointError(f"{path}: weights do not match the model ({'; '.join(parts)})")
    module.load_state_dict(tensors)


def safe_torch_load(path: str | Path, map_location: str = "cpu") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``): never runs pickled code."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise CheckpointError(f"{path}: refused to load (not a plain-weights file: {_first_line(e)})") from None


def construct(cls, config: dict[str, Any], path: str | Path | None = None):
    """``cls(**config)`` keeping only the arguments ``cls`` accepts (task configs hold training-only keys).

    Raises:
        CheckpointError: the config does not build a ``cls`` (named with ``path``).
    """
    import inspect

    params = inspect.signature(cls).parameters
    try:
        return cls(**{k: v for k, v in config.items() if k in params})
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path or 'model file'}: config does not build a {cls.__name__} "
                              f"({_first_line(e)})") from None
