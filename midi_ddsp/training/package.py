"""Assemble a model folder (the layout ``MidiDDSP.from_pretrained`` reads) from trained runs.

    checkpoints/generator.safetensors     runs/generator/model.safetensors (with the control normaliser)
    checkpoints/performance.safetensors   runs/performance/model.safetensors
    checkpoints/transfer.safetensors      runs/analysis_f0ld/model.safetensors + per-instrument loudness and
                                          pitch statistics of the training data (for timbre transfer)
    checkpoints/analysis.safetensors      runs/analysis/model.safetensors

Weights are stored as float16 (restored to float32 on load), which halves the folder.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from safetensors import safe_open

from ..checkpoint import load_weights, save_weights
from ..data.cache import load_features, load_manifest
from ..instruments import by_id

FILES = {"generator": ("generator", "generator"), "performance": ("performance", "performance"),
         "transfer": ("analysis_f0ld", "analysis"), "analysis": ("analysis", "analysis")}


def training_statistics(cache_dir: str | Path) -> dict:
    """Per instrument: A-weighted loudness mean/std (dB) and mean pitch (MIDI) over note frames."""
    loud, pitch = defaultdict(list), defaultdict(list)
    for entry in load_manifest(cache_dir):
        f = load_features(cache_dir, entry)
        on = f["frame_note_index"] >= 0
        name = by_id(int(f["instrument_id"])).name
        loud[name].append(f["loudness_db"][on])
        pitch[name].append(f["frame_pitch"][on])
    stats = {"loudness_stats": {}, "pitch_stats": {}}
    for name in loud:
        values = np.concatenate(loud[name])
        stats["loudness_stats"][name] = {"mean_db": float(values.mean()), "std_db": float(values.std())}
        stats["pitch_stats"][name] = {"mean_midi": float(np.concatenate(pitch[name]).mean())}
    return stats


def package(runs_dir: str | Path, cache_dir: str | Path, out_dir: str | Path) -> list[Path]:
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    written = []
    for name, (run, kind) in FILES.items():
        src = runs_dir / run / "model.safetensors"
        if not src.is_file():
            continue
        tensors, config, extra = load_weights(src, kind)
        if name == "transfer":
            extra = {**extra, **training_statistics(cache_dir)}
        written.append(save_weights(out_dir / f"{name}.safetensors", tensors, kind, config, extra=extra, half=True))
    return written


def metadata(path: str | Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}
