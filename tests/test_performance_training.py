"""Training the performance prior end to end on synthetic rule data (the project's stage config and
runner -> Lightning -> safetensors export -> evaluation script), with tiny models so the fast test runs in
a few seconds."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from midi_ddsp.performance.datamodule import PerformanceDataModule
from midi_ddsp.performance.dataset import write_synthetic_corpus
from midi_ddsp.performance.model import PerformanceModel
from midi_ddsp.performance.sampling import load_model
from midi_ddsp.training.config import load_config
from midi_ddsp.training.runner import run

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(pitch_dim=16, instrument_dim=8, feature_dim=16, encoder_hidden=32, decoder_hidden=32, head_hidden=32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Synthetic data-contract directory whose controls follow known rules (see ``synthetic_controls``)."""
    return write_synthetic_corpus(tmp_path_factory.mktemp("perf_corpus"), n_pieces=20, notes_per_piece=100, seed=3)


def _train(corpus: Path, run_dir: Path, head: str = "bins", steps: int = 100, *extra: str) -> dict:
    overrides = ["stage=performance", f"run_dir={run_dir}", "trainer.progress_bar=false",
                 f"stage.max_steps={steps}", f"stage.val_every_n_steps={steps}", f"checkpoint.every_n_steps={steps}",
                 f"stage.data.data_dir={corpus}", "stage.data.hop=2",
                 "stage.data.batch_size=16", "stage.task.learning_rate=0.003", "stage.task.lr_decay_per_1k_steps=0.5",
                 "stage.task.cpu_threads=0", f"stage.task.model.head={head}",
                 *(f"stage.task.model.{k}={v}" for k, v in TINY.items()), *extra]
    result = run(load_config(overrides))
    return {"export": str(result.export_path), "steps": int(result.trainer.global_step), "run_dir": run_dir}


def _eval_module():
    spec = importlib.util.spec_from_file_location("eval_performance", ROOT / "bench" / "eval_performance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def prior_run(corpus, tmp_path_factory):
    return _train(corpus, tmp_path_factory.mktemp("perf_run") / "prior")


def test_untrained_nll_is_near_uniform(corpus):
    torch.manual_seed(0)
    model = PerformanceModel(**TINY).eval()
    batch = next(iter(PerformanceDataModule(str(corpus), batch_size=16).val_dataloader()))
    with torch.no_grad():
        nll = float(model.loss(batch)["nll"])
    assert abs(nll - np.log(32)) < 0.3


def test_training_lowers_nll_and_beats_instrument_means(corpus, prior_run):
    from midi_ddsp.checkpoint import load_weights

    assert prior_run["steps"] == 100 and Path(prior_run["export"]).is_file()
    _, _, extra = load_weights(prior_run["export"], "performance")
    assert extra["weights_step"] == 100 and extra["best_valid_loss"] < 3.0     # validated at step 100
    res = _eval_module().evaluate(corpus, prior_run["export"], split="test", plots=False)
    uniform = res["nll"]["uniform"]["mean"]          # an untrained model sits about here (ln 32 = 3.47)
    nll_prior, nll_means = res["nll"]["prior"]["mean"], res["nll"]["instrument_means"]["mean"]
    assert nll_prior < uniform - 1.0, res["nll"]
    assert nll_prior < nll_means - 0.1, res["nll"]
    # Temperature-0 error beats the per-instrument means clearly.
    assert res["t0_error"]["prior"]["mae"] < 0.8 * res["t0_error"]["instrument_means"]["mae"], res["t0_error"]
    # Samples vary, reproduce with the same seed, and follow the data's distribution better than the means do.
    s = res["samples"]
    assert s["same_seed_identical"] and s["mean_abs_diff_between_seeds"] > 0.01
    assert res["wasserstein"]["prior_sample_T1"]["mean"] < 0.5 * res["wasserstein"]["instrument_means_T0"]["mean"]


@pytest.mark.slow
def test_regressor_baseline_plots_and_resume(corpus, prior_run, tmp_path, capsys):
    reg = _train(corpus, tmp_path / "reg", "regression", 60)
    assert load_model(reg["export"]).head_type == "regression"
    ev = _eval_module()
    res = ev.main(["--data", str(corpus), "--prior", prior_run["export"], "--regressor", reg["export"],
                   "--out", str(tmp_path / "eval"), "--threads", "0"])
    assert res["nll"]["regressor"]["mean"] < res["nll"]["uniform"]["mean"]
    assert res["t0_error"]["regressor"]["mae"] < res["t0_error"]["instrument_means"]["mae"]
    for name in ("scatter.png", "histograms.png", "curves.png", "metrics.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000
    # Resuming with a larger step budget continues from the last Lightning checkpoint (step 100).
    capsys.readouterr()
    resumed = _train(corpus, prior_run["run_dir"], "bins", 110)
    assert "resuming from" in capsys.readouterr().out
    assert resumed["steps"] == 110
    assert load_model(resumed["export"]).head_type == "bins"


def test_export_writes_the_best_validation_weights_and_checkpoints_keep_them(tmp_path):
    from midi_ddsp.checkpoint import load_weights
    from midi_ddsp.performance.task import PerformanceTask

    task = PerformanceTask(model=TINY)
    best = {k: v.clone() for k, v in task.model.state_dict().items()}
    task.best_score, task.best_step, task._best_state = 1.5, 40, best
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(1.0)                                       # training went on and got worse
    ckpt: dict = {}
    task.on_save_checkpoint(ckpt)
    fresh = PerformanceTask(model=TINY)
    fresh.on_load_checkpoint(ckpt)
    tensors, config, extra = load_weights(fresh.export(tmp_path / "best.safetensors"), "performance")
    assert extra["weights_step"] == 40 and extra["best_valid_loss"] == 1.5
    assert all(torch.equal(tensors[k], best[k]) for k in best)
    latest = PerformanceTask(model=TINY, export_best=False)
    latest.model.load_state_dict(task.model.state_dict())
    latest.on_load_checkpoint(ckpt)
    tensors, _, _ = load_weights(latest.export(tmp_path / "last.safetensors"), "performance")
    assert all(torch.equal(tensors[k], v) for k, v in task.model.state_dict().items())
