"""Compose and validate training configs (Hydra), failing before training with one clear line."""
from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .._paths import shipped
from ..errors import MidiDDSPError

DEFAULT_CONFIG_DIR = shipped("conf")  # the repository's, or the installed package's copy
_POSITIVE = ("learning_rate", "batch_size", "max_steps", "width", "every_n_steps", "every_minutes", "clip_seconds",
             "devices", "num_nodes", "hidden", "n_bins", "window")


class ConfigError(MidiDDSPError):
    """A training config or override is invalid."""


def load_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None,
                config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides (``key=value``) and validate it."""
    config_dir = Path(config_dir or DEFAULT_CONFIG_DIR).resolve()
    if not (config_dir / f"{config_name}.yaml").is_file():
        raise ConfigError(f"config {config_name}.yaml not found in {config_dir}")
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad config override: {_one_line(e)}") from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Check every ``_target_`` section against its constructor, positive sizes and existing data folders."""
    for section in ("task", "data"):
        node = cfg.stage.get(section)
        if node is not None:
            _check_target(f"stage.{section}", node)
    _check_positive(cfg, "")
    _check_consistency(cfg.stage)
    _check_rates(cfg.stage)
    for key, value in _walk(cfg.stage.get("data", {}), "stage.data"):
        if key.endswith("_dir") and value is not None and key.rsplit(".", 1)[-1] not in ("out_dir",):
            if not Path(str(value)).is_dir():
                raise ConfigError(f"{key}: data folder {value} does not exist")
    for key in ("init_from", "normalizer_from", "warm_start"):
        path = cfg.stage.get(key)
        if path and not Path(str(path)).is_file():
            raise ConfigError(f"stage.{key}: {path} does not exist (run the stage that makes it first)")
    if cfg.get("resume") not in ("auto", "never") and not Path(str(cfg.resume)).is_file():
        raise ConfigError(f"resume: {cfg.resume} is neither 'auto', 'never' nor an existing checkpoint file")


def _check_consistency(stage: DictConfig) -> None:
    """The generator's control-consistency loss needs the control normaliser and measurable controls."""
    from .control_consistency import DIFFERENTIABLE_CONTROLS

    task = stage.get("task") or {}
    if (task.get("consistency_weight") or 0) > 0:
        if not stage.get("normalizer_from"):
            raise ConfigError("stage.task.consistency_weight > 0 needs stage.normalizer_from (the targets' "
                              "control_normalizer.safetensors)")
        unknown = set(task.get("consistency_controls") or ()) - set(DIFFERENTIABLE_CONTROLS)
        if unknown:
            raise ConfigError(f"stage.task.consistency_controls: {', '.join(sorted(unknown))} cannot be measured "
                              f"differentiably (choose from {', '.join(DIFFERENTIABLE_CONTROLS)})")


def _check_rates(stage: DictConfig) -> None:
    """The task's sample rate must be the rate of its feature cache and of the files it starts from."""
    import json

    task, data = stage.get("task") or {}, stage.get("data") or {}
    rate = task.get("sample_rate")
    if rate is None:
        return
    cache = data.get("cache_dir")
    manifest = Path(str(cache)) / "manifest.json" if cache else None
    if manifest is not None and manifest.is_file():
        have = json.loads(manifest.read_text()).get("config", {}).get("sample_rate")
        if have is not None and int(have) != int(rate):
            raise ConfigError(f"stage.task.sample_rate is {rate} Hz but the feature cache {cache} holds {have} Hz "
                              f"audio; set sample_rate={have} or cache features at {rate} Hz")
    targets = data.get("targets_dir")
    info = Path(str(targets)) / "targets.json" if targets else None
    if info is not None and info.is_file():
        have = json.loads(info.read_text()).get("sample_rate")
        if have is not None and int(have) != int(rate):
            raise ConfigError(f"stage.task.sample_rate is {rate} Hz but the targets {targets} were made at {have} Hz")


def _check_target(where: str, node: DictConfig) -> None:
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{where}: missing _target_")
    module_name, _, attr = str(target).rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise ConfigError(f"{where}._target_: cannot import {target}") from None
    sig = inspect.signature(obj)
    hints = typing.get_type_hints(obj.__init__) if inspect.isclass(obj) else typing.get_type_hints(obj)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key, value in node.items():
        if key.startswith("_"):
            continue
        if key not in sig.parameters and not accepts_kwargs:
            raise ConfigError(f"{where}.{key}: unknown option for {attr} (known: {', '.join(sig.parameters)})")
        expected = hints.get(key)
        if expected is not None and not _type_ok(value, expected):
            raise ConfigError(f"{where}.{key}: expected {getattr(expected, '__name__', expected)}, got {value!r}")


def _type_ok(value: Any, expected: Any) -> bool:
    if value is None:
        return expected is type(None) or type(None) in typing.get_args(expected)
    options = typing.get_args(expected) if typing.get_origin(expected) in (typing.Union, getattr(__import__("types"), "UnionType", None)) else (expected,)
    for t in options:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t in (bool, str) and isinstance(value, t):
            return True
        if t not in (float, int, bool, str):
            return True  # containers, paths, tensors: not checked here
    return False


def _check_positive(node: Any, prefix: str) -> None:
    for key, value in _walk(node, prefix.rstrip(".")):
        name = key.rsplit(".", 1)[-1]
        if name in _POSITIVE and isinstance(value, (int, float)) and not isinstance(value, bool):
            if name == "devices" and value == -1:
                continue
            if value <= 0:
                raise ConfigError(f"{key}: must be positive, got {value}")


def _walk(node: Any, prefix: str):
    if isinstance(node, DictConfig) or isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, node


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
