"""Evaluate the performance prior on a data-contract directory (default: the test split).

    nice python bench/eval_performance.py --data corpus/performance --prior checkpoints/performance.safetensors \\
        --regressor runs/performance_regressor/performance.safetensors --out runs/performance_eval

Reports, over the notes of every piece in the split, each note read from its neighbourhood as rendering
reads it (:mod:`midi_ddsp.performance.neighbourhood`):
- NLL in nats per control, discretised on the prior's bins (so the three are comparable): the prior
  (exact, teacher-forced chain rule), (a) per-instrument histograms of the train split, (b) the regressor
  as a Gaussian around its teacher-forced prediction with the per-control residual std of the valid split;
- MAE / MSE per control of the temperature-0 prediction: prior (conditional medians), (a) per-instrument means,
  (b) the regressor (autoregressive);
- temperature-1 samples: mean |difference| between two seeds (diversity), whether one seed reproduces
  exactly, and the 1-D Wasserstein distance per control between the split's true values and the samples
  (also for the deterministic predictors, for contrast);
- PNG plots (scatter, histograms, one piece's curves) and ``metrics.json`` in ``--out``.
Targets are clamped to the model's control range.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm, wasserstein_distance

from midi_ddsp.note_level.notes import CONTROL_NAMES, N_CONTROLS
from midi_ddsp.performance.dataset import instrument_statistics, load_notes_split, load_split
from midi_ddsp.performance.model import InstrumentMeans, PerformanceModel
from midi_ddsp.performance.plots import plot_curves, plot_histograms, plot_scatter
from midi_ddsp.performance.sampling import load_model, perform_notes, teacher_forced_notes


def teacher_forced(model: PerformanceModel, pieces) -> np.ndarray:
    """[notes, 6] over all pieces: log-probabilities of the true bins (bins head) or predicted values
    (regression), every note read from its neighbourhood as rendering reads it."""
    return np.concatenate(teacher_forced_notes(model, pieces))


def generate(model: PerformanceModel, pieces, temperature: float, seed: int | None, first: int = 0) -> np.ndarray:
    """[notes, 6] over all pieces; piece ``i`` keyed to ``seed + first + i``."""
    keys = None if seed is None else [seed + first + i for i in range(len(pieces))]
    return np.concatenate(perform_notes(model, pieces, temperature, keys))


def _errors(pred: np.ndarray, true: np.ndarray) -> dict:
    mae, mse = np.abs(pred - true).mean(0), ((pred - true) ** 2).mean(0)
    return {"mae": float(mae.mean()), "mse": float(mse.mean()),
            "mae_per_control": dict(zip(CONTROL_NAMES, map(float, mae))),
            "mse_per_control": dict(zip(CONTROL_NAMES, map(float, mse)))}


def _wasserstein(pred: np.ndarray, true: np.ndarray) -> dict:
    w = [wasserstein_distance(true[:, k], pred[:, k]) for k in range(N_CONTROLS)]
    return {"mean": float(np.mean(w)), "per_control": dict(zip(CONTROL_NAMES, map(float, w)))}


def _gaussian_bin_logp(mu: np.ndarray, sigma: np.ndarray, bins: np.ndarray, model: PerformanceModel) -> np.ndarray:
    """log P(bin) of N(mu, sigma) integrated over the prior's bins (outer bins extend to +-inf)."""
    half = model.bin_width / 2
    centre = model.lo + bins * model.bin_width
    upper = np.where(bins == model.n_bins - 1, np.inf, centre + half)
    lower = np.where(bins == 0, -np.inf, centre - half)
    p = norm.cdf((upper - mu) / sigma) - norm.cdf((lower - mu) / sigma)
    return np.log(np.maximum(p, 1e-12))


def evaluate(data_dir: str | Path, prior_path: str | Path, regressor_path: str | Path | None = None,
             out_dir: str | Path | None = None, split: str = "test", seeds: tuple[int, int] = (1, 2),
             plots: bool = True, sample_temperature: float = 1.0) -> dict:
    prior = load_model(prior_path)
    if prior.head_type != "bins":
        raise SystemExit(f"{prior_path}: the prior must have the bins head, got {prior.head_type!r}")
    rest = prior.rest_threshold_s
    lo, hi = prior.lo, prior.hi
    train = load_split(data_dir, "train", rest)
    test = [p for p in load_notes_split(data_dir, split) if len(p)]
    if not test:
        raise SystemExit(f"{data_dir}: split {split!r} has no notes")
    stats = instrument_statistics(train, prior.n_bins, (lo, hi), prior.config["n_instruments"])
    means = InstrumentMeans(stats["mean"], stats["hist"])
    true = np.clip(np.concatenate([p.controls for p in test]), lo, hi)
    true_bins = prior.to_bins(torch.from_numpy(true)).numpy()
    inst = np.concatenate([np.full(len(p), p.instrument_id) for p in test])
    res: dict = {"split": split, "n_pieces": len(test), "n_notes": int(len(true)), "n_bins": prior.n_bins}

    # NLL (nats per control on the prior's bins).
    nll = {"prior": -teacher_forced(prior, test)}
    nll["instrument_means"] = -means.log_p[inst[:, None], np.arange(N_CONTROLS)[None], true_bins]
    # Deterministic predictions at temperature 0.
    start = time.perf_counter()
    pred = {"prior": generate(prior, test, 0.0, None)}
    res["prior_generation_notes_per_s"] = float(len(true) / (time.perf_counter() - start))
    pred["instrument_means"] = stats["mean"][inst]
    if regressor_path is not None:
        reg = load_model(regressor_path)
        pred["regressor"] = generate(reg, test, 0.0, None)
        valid = load_notes_split(data_dir, "valid") or load_notes_split(data_dir, "train")
        v_true = np.clip(np.concatenate([p.controls for p in valid]), reg.lo, reg.hi)
        sigma = np.sqrt(((teacher_forced(reg, valid) - v_true) ** 2).mean(0)).clip(1e-3)
        mu = teacher_forced(reg, test)
        nll["regressor"] = -_gaussian_bin_logp(mu, sigma[None], true_bins, prior)
        res["regressor_valid_residual_std"] = dict(zip(CONTROL_NAMES, map(float, sigma)))
    res["nll"] = {k: {"mean": float(v.mean()), "per_control": dict(zip(CONTROL_NAMES, map(float, v.mean(0))))}
                  for k, v in nll.items()}
    res["nll"]["uniform"] = {"mean": float(np.log(prior.n_bins))}
    res["t0_error"] = {k: _errors(v, true) for k, v in pred.items()}

    # Samples at temperature 1 (or --sample-temperature).
    s1 = generate(prior, test, sample_temperature, seeds[0])
    s1b = generate(prior, test, sample_temperature, seeds[0])
    s2 = generate(prior, test, sample_temperature, seeds[1])
    res["samples"] = {
        "temperature": sample_temperature,
        "same_seed_identical": bool(np.array_equal(s1, s1b)),
        "mean_abs_diff_between_seeds": float(np.abs(s1 - s2).mean()),
        "fraction_of_notes_that_differ": float((np.abs(s1 - s2).max(1) > 1e-6).mean()),
        "sample_error": _errors(s1, true),
    }
    res["wasserstein"] = {"prior_sample_T1": _wasserstein(s1, true), "prior_sample_T1_seed2": _wasserstein(s2, true)}
    res["wasserstein"].update({f"{k}_T0": _wasserstein(v, true) for k, v in pred.items()})

    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(res, indent=1))
        if plots:
            res["plots"] = [str(plot_scatter(true, {f"{k} T=0": v for k, v in pred.items()} | {"prior T=1": s1},
                                             out_dir / "scatter.png")),
                            str(plot_histograms(true, {"prior T=1": s1, "prior T=0": pred["prior"]}
                                                | ({"regressor": pred["regressor"]} if "regressor" in pred else {}),
                                                out_dir / "histograms.png", prior.n_bins, (lo, hi)))]
            p0 = test[0]
            t0 = np.clip(p0.controls, lo, hi)
            curves = {"prior T=0": generate(prior, [p0], 0.0, None)}
            for s in (seeds[0], seeds[1]):
                curves[f"prior T=1 seed {s}"] = generate(prior, [p0], 1.0, s)
            if regressor_path is not None:
                curves["regressor"] = generate(reg, [p0], 0.0, None)
            res["plots"].append(str(plot_curves(t0, curves, out_dir / "curves.png", title=f"{split} piece 0")))
    return res


def format_report(res: dict) -> str:
    lines = [f"split {res['split']}: {res['n_pieces']} pieces, {res['n_notes']} notes, {res['n_bins']} bins"]
    lines.append("| predictor | NLL (nats/control) | T0 MAE | T0 MSE | W1 (mean over controls) |")
    lines.append("|---|---|---|---|---|")
    for k in res["t0_error"]:
        nll = res["nll"].get(k, {}).get("mean")
        w = res["wasserstein"][f"{k}_T0"]["mean"]
        e = res["t0_error"][k]
        lines.append(f"| {k} | {'' if nll is None else f'{nll:.3f}'} | {e['mae']:.4f} | {e['mse']:.5f} | {w:.4f} |")
    s = res["samples"]
    lines.append(f"| prior T={s.get('temperature', 1.0):g} sample | | {s['sample_error']['mae']:.4f} | {s['sample_error']['mse']:.5f} | "
                 f"{res['wasserstein']['prior_sample_T1']['mean']:.4f} |")
    lines.append(f"uniform NLL {res['nll']['uniform']['mean']:.3f}; same seed identical: {s['same_seed_identical']}; "
                 f"mean |seed1 - seed2| {s['mean_abs_diff_between_seeds']:.4f} "
                 f"({100 * s['fraction_of_notes_that_differ']:.0f}% of notes differ); "
                 f"prior generation {res['prior_generation_notes_per_s']:.0f} notes/s")
    lines.append(f"W1 per control (prior T={s.get('temperature', 1.0):g}): " + ", ".join(
        f"{k} {v:.4f}" for k, v in res["wasserstein"]["prior_sample_T1"]["per_control"].items()))
    lines.append("T0 MAE per control (prior): " + ", ".join(
        f"{k} {v:.4f}" for k, v in res["t0_error"]["prior"]["mae_per_control"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="data-contract directory (<stem>.npz + split.json)")
    ap.add_argument("--prior", required=True, help="performance prior weights (bins head, .safetensors)")
    ap.add_argument("--regressor", default=None, help="deterministic regressor weights (baseline b)")
    ap.add_argument("--out", default=None, help="folder for metrics.json and PNG plots")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seeds", type=int, nargs=2, default=(1, 2))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sample-temperature", type=float, default=1.0, help="temperature of the sampled takes")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = evaluate(args.data, args.prior, args.regressor, args.out, args.split, tuple(args.seeds), not args.no_plots,
                   args.sample_temperature)
    print(format_report(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
