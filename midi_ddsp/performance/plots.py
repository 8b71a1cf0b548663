"""Plots of predicted vs true expression controls (PNG files; matplotlib with the Agg backend).

- :func:`plot_scatter`: predicted against true value, one panel per control, several predictors overlaid;
- :func:`plot_histograms`: per-control distributions (true vs predicted/sampled);
- :func:`plot_curves`: controls along one voice, note by note (true, temperature 0, samples).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from midi_ddsp.note_level.notes import CONTROL_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_scatter(true: np.ndarray, predictions: Mapping[str, np.ndarray], path: str | Path,
                 max_points: int = 4000, seed: int = 0) -> Path:
    """Scatter of predicted [N, 6] vs ``true`` [N, 6] per control, one colour per predictor."""
    plt = _pyplot()
    true = np.asarray(true)
    idx = np.arange(len(true))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    for k, ax in enumerate(axes.flat):
        for name, pred in predictions.items():
            ax.scatter(true[idx, k], np.asarray(pred)[idx, k], s=4, alpha=0.35, label=name)
        lo = min(0.0, float(true[:, k].min()))
        hi = max(1.0, float(true[:, k].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(CONTROL_NAMES[k])
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
    axes.flat[0].legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_histograms(true: np.ndarray, predictions: Mapping[str, np.ndarray], path: str | Path,
                    bins: int = 32, value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Per-control histograms (densities) of ``true`` [N, 6] and each predictor's [N, 6]."""
    plt = _pyplot()
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    for k, ax in enumerate(axes.flat):
        ax.hist(np.asarray(true)[:, k], bins=edges, density=True, color="k", alpha=0.25, label="true")
        for name, pred in predictions.items():
            ax.hist(np.asarray(pred)[:, k], bins=edges, density=True, histtype="step", lw=1.5, label=name)
        ax.set_title(CONTROL_NAMES[k])
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(true: np.ndarray, predictions: Mapping[str, np.ndarray], path: str | Path,
                title: str = "", max_notes: int = 120) -> Path:
    """Controls of one voice along its notes: ``true`` [N, 6] and each predictor's [N, 6]."""
    plt = _pyplot()
    n = min(len(true), max_notes)
    fig, axes = plt.subplots(6, 1, figsize=(12, 11), sharex=True)
    x = np.arange(n)
    for k, ax in enumerate(axes):
        ax.plot(x, np.asarray(true)[:n, k], "k.-", lw=1.2, label="true")
        for name, pred in predictions.items():
            ax.plot(x, np.asarray(pred)[:n, k], ".-", lw=0.8, alpha=0.8, label=name)
        ax.set_ylabel(CONTROL_NAMES[k], fontsize=8)
    axes[0].legend(fontsize=7, ncol=6, loc="upper right")
    axes[-1].set_xlabel("note")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["plot_scatter", "plot_histograms", "plot_curves"]
