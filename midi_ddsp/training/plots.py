"""Loss curves of a training run (CSV logs of every resumed segment) as a PNG."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All logged scalars of a run: {name: [(step, value), ...]} sorted by step (later segments win)."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(Path(run_dir).glob("logs/*/metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(row["step"])
                for k, v in row.items():
                    if k not in ("step", "epoch") and v not in ("", None):
                        series[k][step] = float(v)
    return {k: sorted(v.items()) for k, v in series.items()}


def plot_loss_curves(run_dir: str | Path, out_png: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = read_metrics(run_dir)
    names = sorted({k.split("/", 1)[-1] for k in metrics})
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.4 * max(1, len(names))), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        for stage in ("train", "valid"):
            pts = metrics.get(f"{stage}/{name}")
            if pts:
                steps, values = zip(*pts)
                ax.plot(steps, values, label=stage, lw=1 if stage == "train" else 2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_png or Path(run_dir) / "loss_curves.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
