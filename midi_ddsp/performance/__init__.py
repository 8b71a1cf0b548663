"""The performance level: the expression generator (a prior over six controls per note) and its sampling.

    from midi_ddsp.performance import load_model, predict_performance
    model = load_model("checkpoints/performance.safetensors")
    performance = predict_performance(model, sequence, temperature=1.0, seed=0)

Modules: ``dataset`` (note tokens, windows, DataModule, synthetic data), ``model`` (PerformanceModel,
InstrumentMeans), ``task`` (LightningModule + Hydra training entry point), ``sampling`` (inference, model
files), ``plots`` (predicted vs true controls).
"""
from .model import InstrumentMeans, PerformanceModel
from .sampling import load_model, predict_performance, predict_performances, save_model

__all__ = ["PerformanceModel", "InstrumentMeans", "load_model", "save_model", "predict_performance",
           "predict_performances"]
