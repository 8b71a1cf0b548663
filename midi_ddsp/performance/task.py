"""Training of the performance prior: the LightningModule.

Trained through the project's stage runner (config: ``conf/stage/performance.yaml``; Lightning checkpoints,
resume, progress bar and weight export come from :mod:`midi_ddsp.training.runner`)::

    nice midi-ddsp train stage=performance stage.data.data_dir=runs/targets/notes
    # the deterministic regressor baseline (b), same size:
    nice midi-ddsp train stage=performance stage.data.data_dir=runs/targets/notes \\
        stage.task.model.head=regression run_dir=runs/performance_regressor
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from .model import PerformanceModel
from .neighbourhood import Neighbourhood
from .sampling import save_model


def _plain(value: Any) -> Any:
    """OmegaConf containers (from Hydra) -> plain dicts/lists, so checkpoints load with weights_only=True."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value


class PerformanceTask(pl.LightningModule):
    """Trains a :class:`PerformanceModel` (bins head: NLL; regression head: MSE) with Adam + exponential decay.

    Batches come from :class:`midi_ddsp.performance.datamodule.PerformanceDataModule`.

    Args:
        model: :class:`PerformanceModel` constructor arguments (head, sizes, bins, control range).
        learning_rate: Adam step size; lr_decay_per_1k_steps: multiplicative decay per 1000 steps.
        prev_dropout: probability of hiding the previous token's controls from the decoder in training
            (teacher forcing otherwise), which makes sampling robust to its own earlier choices.
        rest_threshold_s: tokenisation of the data (stored in the exported weights so inference matches).
        neighbourhood: the note neighbourhoods the data module draws (:class:`Neighbourhood` fields; stored
            in the exported weights so rendering reads the same).
        cpu_threads: torch threads when training on the CPU (0 leaves torch's default). One thread is the
            fastest for these small GRUs on a shared 2-core machine; this is set at fit start, not at import.
        export_best: :meth:`export` writes the weights of the validation run with the lowest ``valid/loss``
            so far (kept in memory and in the Lightning checkpoints) instead of the latest ones, so a run
            that trains past its best point still ships the best model.
    """

    def __init__(self, model: dict[str, Any] | None = None, learning_rate: float = 1e-3,
                 lr_decay_per_1k_steps: float = 0.9, prev_dropout: float = 0.3, rest_threshold_s: float = 0.1,
                 neighbourhood: dict[str, Any] | None = None, cpu_threads: int = 0, export_best: bool = True) -> None:
        super().__init__()
        model = dict(_plain(model) or {})
        neighbourhood = Neighbourhood.from_dict(_plain(neighbourhood)).to_dict()
        self.save_hyperparameters()
        self.model = PerformanceModel(**model)
        self.best_score: float | None = None
        self.best_step: int | None = None
        self._best_state: dict[str, Tensor] | None = None

    def on_fit_start(self) -> None:
        if self.device.type == "cpu" and self.hparams.cpu_threads > 0:
            torch.set_num_threads(int(self.hparams.cpu_threads))

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        losses = self.model.loss(batch, self.hparams.prev_dropout if stage == "train" else 0.0)
        n = int(batch["pitch"].shape[0])
        for k, v in losses.items():
            self.log(f"{stage}/{k}", v, prog_bar=k != "loss", batch_size=n, sync_dist=stage != "train",
                     on_step=stage == "train", on_epoch=stage != "train")
        return losses["loss"]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "valid")
        n = (batch["mask"] & ~batch["is_rest"]).sum()
        self._valid_sum = self._valid_sum + loss.detach() * n
        self._valid_count = self._valid_count + n
        return loss

    def on_validation_epoch_start(self) -> None:
        self._valid_sum = torch.zeros((), device=self.device)
        self._valid_count = torch.zeros((), device=self.device, dtype=torch.long)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        # Note-weighted mean over the whole validation set (all ranks).
        total = self.all_gather(self._valid_sum).sum()
        count = self.all_gather(self._valid_count).sum()
        if int(count) == 0:
            return
        score = float(total / count)
        if self.best_score is None or score < self.best_score:
            self.best_score, self.best_step = score, int(self.global_step)
            self._best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self._best_state is not None:
            checkpoint["performance_best"] = {"score": self.best_score, "step": self.best_step,
                                              "state_dict": self._best_state}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        best = checkpoint.get("performance_best")
        if best:
            self.best_score, self.best_step = float(best["score"]), int(best["step"])
            self._best_state = dict(best["state_dict"])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
        gamma = self.hparams.lr_decay_per_1k_steps ** (1 / 1000)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def export(self, path: str | Path, half: bool = False) -> Path:
        """Write the model's weights + config (safetensors, ``kind="performance"``); see
        :func:`midi_ddsp.performance.sampling.load_model`. With ``export_best`` and a validation run done,
        the best validation weights are written (``extra["weights_step"]`` says from which step)."""
        model, weights_step = self.model, int(self.global_step)
        if self.hparams.export_best and self._best_state is not None:
            model = PerformanceModel(**self.model.config)
            model.load_state_dict(self._best_state)
            weights_step = int(self.best_step)
        extra = {"global_step": int(self.global_step), "weights_step": weights_step,
                 "best_valid_loss": self.best_score}
        return save_model(model, path, self.hparams.rest_threshold_s, half=half, extra=extra,
                          neighbourhood=Neighbourhood.from_dict(self.hparams.neighbourhood))


__all__ = ["PerformanceTask"]
