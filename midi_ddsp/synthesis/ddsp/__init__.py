"""Differentiable DSP in PyTorch: stateless ops, synths, effects, streaming, one processor chain, features,
losses and metrics.

Knows nothing of MIDI, notes, models or training, and imports nothing else from midi_ddsp; usable on its own.
Modules: :mod:`.functional` (stateless ops), :mod:`.synths` (HarmonicSynth, FilteredNoise), :mod:`.effects`
(Reverb), :mod:`.streaming` (stateful seam-free block processing), :mod:`.processors` (Sum, Chain),
:mod:`.features` (loudness, log-mel, f0), :mod:`.losses`, :mod:`.metrics`, :mod:`.inversion`.

The public names below are importable from this package; they load on first use, so importing one module
(e.g. the synths, to render) does not load the feature extractors' dependencies.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "functional": None,
    "HarmonicSynth": "synths", "HarmonicControls": "synths", "FilteredNoise": "synths", "NoiseControls": "synths",
    "Reverb": "effects", "ReverbControls": "effects",
    "HarmonicStream": "streaming", "FIRStream": "streaming", "ConvolutionStream": "streaming",
    "Aligner": "streaming",
    "Sum": "processors", "Chain": "processors", "ChainControls": "processors", "Source": "processors",
    "Effect": "processors",
    "a_weighted_loudness": "features", "log_mel": "features", "estimate_f0": "features",
    "MultiScaleSpectralLoss": "losses",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    if module is None:
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
