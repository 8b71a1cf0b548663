"""Loss curves of the training runs as PNGs:  python eval/plot_training.py [--runs runs] [--out docs]"""
from __future__ import annotations

import argparse
from pathlib import Path

from midi_ddsp.training.plots import plot_loss_curves


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", default="runs")
    p.add_argument("--out", default="docs")
    args = p.parse_args()
    for run in sorted(Path(args.runs).iterdir()):
        if any(run.glob("logs/*/metrics.csv")):
            print(plot_loss_curves(run, Path(args.out) / f"loss_{run.name}.png"))


if __name__ == "__main__":
    main()
