"""Model folders: the safetensors files of the levels, loaded into plain ``nn.Module`` networks.

A folder holds ``generator.safetensors`` (required: the synthesis generator, the synthesizer with its reverb
bank, the control normaliser) and optionally ``performance.safetensors`` (the expression prior),
``transfer.safetensors`` (the f0 + loudness decoder for timbre transfer) and ``analysis.safetensors`` (audio
-> synthesis parameters). The sample rate, frame rate and sizes come from the generator file's config: the
folder is the one source of the rate everything runs at. Nothing here imports a training framework.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from .checkpoint import CheckpointError, construct, load_into, load_weights
from .model_files import (ANALYSIS_FILE, DEFAULT_CHECKPOINTS, GENERATOR_FILE, PERFORMANCE_FILE, TRANSFER_FILE,
                          locate)
from .note_level.expression import ControlNormalizer
from .synthesis.analysis import AnalysisModel
from .synthesis.generator import SynthesisGenerator
from .synthesis.synthesizer import Synthesizer



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


@dataclass
class ModelFolder:
    """Everything a model folder holds, loaded. Optional models are None when their file is absent.

    Attributes:
        sample_rate: Hz, frame_rate: Hz (from the generator's config).
        transfer_stats: per-instrument ``loudness_stats`` / ``pitch_stats`` stored with the transfer model.
    """

    path: Path
    generator: SynthesisGenerator
    synth: Synthesizer
    normalizer: ControlNormalizer | None
    sample_rate: int
    frame_rate: float
    performance_model: Any = None
    transfer_model: AnalysisModel | None = None
    transfer_synth: Synthesizer | None = None
    transfer_stats: dict = field(default_factory=dict)
    analysis_model: AnalysisModel | None = None
    analysis_synth: Synthesizer | None = None


def _load_analysis_kind(path: Path, want_mels: bool, sample_rate: int):
    model, synth, config, extra, _ = load_analysis(path)
    if int(config.get("sample_rate", sample_rate)) != sample_rate:
        raise CheckpointError(f"{path}: made for {config['sample_rate']} Hz, the generator for {sample_rate} Hz")
    if want_mels and model.n_mels <= 0:
        raise CheckpointError(f"{path}: an f0 + loudness model (n_mels=0); the analysis model needs log-mel input")
    if not want_mels and model.n_mels != 0:
        raise CheckpointError(f"{path}: timbre transfer needs the f0 + loudness model (n_mels=0), "
                              f"got n_mels={model.n_mels}")
    return model, synth, extra


def load_folder(path: str | Path | None = None) -> ModelFolder:
    """Load a model folder (default: the shipped ``checkpoints/``).

    Raises:
        CheckpointError: the folder or its generator is missing, or a file is corrupt, of the wrong kind or
            does not match the code.
    """
    folder, gen_path = locate(path)
    generator, synth, config, _, others = load_generator(gen_path)
    normalizer = None
    if ControlNormalizer.PREFIX + "low" in others:
        try:
            normalizer = ControlNormalizer.from_dict(others)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{gen_path}: bad control normalizer ({e})") from None
    if "sample_rate" not in config:
        raise CheckpointError(f"{gen_path}: no sample_rate in the model config")
    out = ModelFolder(folder, generator, synth, normalizer, int(config["sample_rate"]),
                      float(config.get("frame_rate", 250.0)))
    if (folder / PERFORMANCE_FILE).is_file():
        from .performance.sampling import load_model

        try:
            out.performance_model = load_model(folder / PERFORMANCE_FILE)
        except CheckpointError:
            raise
        except (TypeError, ValueError, RuntimeError, KeyError) as e:
            raise CheckpointError(f"{folder / PERFORMANCE_FILE}: cannot build the performance model ({e})") from None
    if (folder / TRANSFER_FILE).is_file():
        out.transfer_model, out.transfer_synth, extra = _load_analysis_kind(folder / TRANSFER_FILE, False,
                                                                                    out.sample_rate)
        out.transfer_stats = {"loudness_stats": dict(extra.get("loudness_stats", {})),
                              "pitch_stats": dict(extra.get("pitch_stats", {}))}
    if (folder / ANALYSIS_FILE).is_file():
        out.analysis_model, out.analysis_synth, _ = _load_analysis_kind(folder / ANALYSIS_FILE, True, out.sample_rate)
    return out


__all__ = ["ModelFolder", "LoadedModel", "load_folder", "load_generator", "load_analysis", "DEFAULT_CHECKPOINTS",
           "GENERATOR_FILE", "PERFORMANCE_FILE", "TRANSFER_FILE", "ANALYSIS_FILE"]
