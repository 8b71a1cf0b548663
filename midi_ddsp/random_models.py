"""Model folders with randomly initialised (untrained) networks, in the shipped layout: for tests and
benchmarks. Everything loads and runs; nothing sounds like an instrument, nor obeys the controls."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import construct, save_weights
from .instruments import INSTRUMENTS
from .model_folder import ANALYSIS_FILE, GENERATOR_FILE, PERFORMANCE_FILE, TRANSFER_FILE
from .note_level.expression import ControlNormalizer
from .synthesis.analysis import AnalysisModel
from .synthesis.generator import SynthesisGenerator
from .synthesis.synthesizer import Synthesizer


def _synth_tensors(model: torch.nn.Module, synth: Synthesizer) -> dict:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    return tensors | {f"synth.{k}": v for k, v in synth.state_dict().items()}


def write_random_checkpoints(folder: str | Path, width: int = 32, f0_hidden: int = 32, reverb_length: int = 16000,
                             seed: int = 0, performance: bool = True, transfer: bool = True,
                             analysis: bool = True, small_performance: bool = True, sample_rate: int = 16000,
                             n_harmonics: int = 60, n_noise_bands: int = 65) -> Path:
    """Write a model folder of untrained models at ``sample_rate`` (Hz; frames at 250 Hz).

    ``small_performance=False`` gives the expression model its default sizes (for timing).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    sizes = dict(n_instruments=len(INSTRUMENTS), instrument_dim=16, n_harmonics=n_harmonics,
                 n_noise_bands=n_noise_bands, reverb_length=reverb_length, sample_rate=sample_rate, frame_rate=250)
    cfg = dict(sizes, width=width, f0_hidden=f0_hidden, f0_bins=401, f0_max_semitones=4.0, f0_block=5)
    synth_args = (n_harmonics, n_noise_bands, len(INSTRUMENTS), reverb_length)
    tensors = _synth_tensors(construct(SynthesisGenerator, cfg), Synthesizer(*synth_args))
    tensors |= ControlNormalizer.identity().to_dict()
    save_weights(folder / GENERATOR_FILE, tensors, "generator", cfg, extra={"random_init": True})
    if performance:
        from .performance.model import PerformanceModel
        from .performance.sampling import save_model

        small = dict(n_bins=16, pitch_dim=8, instrument_dim=8, feature_dim=16, encoder_hidden=16, decoder_hidden=16,
                     head_hidden=16) if small_performance else {}  # else the model's default sizes
        save_model(PerformanceModel(**small), folder / PERFORMANCE_FILE, extra={"random_init": True})
    for name, n_mels, wanted in ((TRANSFER_FILE, 0, transfer), (ANALYSIS_FILE, 64, analysis)):
        if wanted:
            acfg = dict(sizes, n_mels=n_mels, width=width)
            model = AnalysisModel(n_mels, width, len(INSTRUMENTS), 16, n_harmonics, n_noise_bands)
            save_weights(folder / name, _synth_tensors(model, Synthesizer(*synth_args)), "analysis", acfg,
                         extra={"random_init": True})
    return folder


__all__ = ["write_random_checkpoints"]
