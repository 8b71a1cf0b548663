"""Load the synthesis-level models from their safetensors files (see midi_ddsp.checkpoint)."""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import construct, load_into, load_weights
from .analysis import AnalysisModel
from .generator import SynthesisGenerator
from .synthesizer import Synthesizer


def _split(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _synth(tensors: dict, config: dict, path) -> Synthesizer:
    synth = construct(Synthesizer, config)
    load_into(synth, _split(tensors, "synth."), path)
    return synth.eval()


def load_analysis(path: str | Path) -> tuple[AnalysisModel, Synthesizer, dict]:
    """(model, synthesizer with its reverb bank, extra metadata) of an ``analysis`` file."""
    tensors, config, extra = load_weights(path, "analysis")
    model = construct(AnalysisModel, config)
    load_into(model, _split(tensors, "model."), path)
    return model.eval(), _synth(tensors, config, path), extra


def load_generator(path: str | Path) -> tuple[SynthesisGenerator, Synthesizer, dict, dict]:
    """(generator, synthesizer, other tensors such as the control normaliser, extra) of a ``generator`` file."""
    tensors, config, extra = load_weights(path, "generator")
    model = construct(SynthesisGenerator, config)
    load_into(model, _split(tensors, "model."), path)
    others = {k: v for k, v in tensors.items() if not k.startswith(("model.", "synth."))}
    return model.eval(), _synth(tensors, config, path), others, extra
