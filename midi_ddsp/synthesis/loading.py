"""Load the synthesis-level models from their safetensors files (see midi_ddsp.checkpoint)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from ..checkpoint import construct, load_into, load_weights
from .analysis import AnalysisModel
from .generator import SynthesisGenerator
from .synthesizer import Synthesizer


class LoadedModel(NamedTuple):
    """A model, the synthesizer (with its reverb bank) stored beside it, and the file's metadata."""

    model: nn.Module
    synth: Synthesizer
    config: dict[str, Any]
    extra: dict[str, Any]
    others: dict[str, Tensor]  # tensors that belong to neither, e.g. the control normaliser


def _split(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _load(path: str | Path, kind: str, cls) -> LoadedModel:
    tensors, config, extra = load_weights(path, kind)
    model = construct(cls, config, path)
    load_into(model, _split(tensors, "model."), path)
    synth = construct(Synthesizer, config, path)
    load_into(synth, _split(tensors, "synth."), path)
    others = {k: v for k, v in tensors.items() if not k.startswith(("model.", "synth."))}
    return LoadedModel(model.eval(), synth.eval(), config, extra, others)


def load_analysis(path: str | Path) -> LoadedModel:
    """An ``analysis`` file: AnalysisModel (log-mel or f0 + loudness variant) + synthesizer."""
    return _load(path, "analysis", AnalysisModel)


def load_generator(path: str | Path) -> LoadedModel:
    """A ``generator`` file: SynthesisGenerator + synthesizer; ``others`` holds the control normaliser."""
    return _load(path, "generator", SynthesisGenerator)
