"""Training callbacks: atomic periodic checkpoints (steps and wall time), weight export, audio samples."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import soundfile as sf
import torch


class PeriodicCheckpoint(pl.Callback):
    """Write ``<dir>/last.ckpt`` every ``every_n_steps`` steps or ``every_minutes`` minutes, whichever comes
    first, and at the end of training.

    The file is written to a temporary name and renamed, so a crash (even SIGKILL) mid-write leaves the
    previous checkpoint intact: at most one interval of training is lost. Only global rank 0 writes.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int = 500, every_minutes: float = 5.0) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.every_seconds = every_minutes * 60.0
        self._last_time = time.monotonic()

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def save(self, trainer: pl.Trainer) -> None:
        tmp = self.dirpath / ".last.ckpt.tmp"
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier()
        trainer.save_checkpoint(tmp, weights_only=False)  # full state: optimizer, loops, schedulers
        if trainer.is_global_zero:
            os.replace(tmp, self.last_path)
        trainer.strategy.barrier()
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        due_time = time.monotonic() - self._last_time >= self.every_seconds
        # All ranks must agree, so the time-based decision is taken on rank 0 and broadcast.
        due_time = trainer.strategy.broadcast(due_time, src=0)
        if (self.every_n_steps and step % self.every_n_steps == 0) or due_time:
            self.save(trainer)
            if hasattr(pl_module, "on_periodic_checkpoint"):
                pl_module.on_periodic_checkpoint()

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)


class ExportWeights(pl.Callback):
    """Export the task's inference weights (safetensors + JSON config) next to each checkpoint and at the end."""

    def __init__(self, path: str | Path, every_n_steps: int = 500) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps

    def _export(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            pl_module.export(self.path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._export(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._export(trainer, pl_module)


class AudioSamples(pl.Callback):
    """After each validation run, write the task's rendering of the first validation batch as WAV files
    (``samples/step<N>_<i>.wav``) for listening. Tasks opt in by defining ``sample_audio(batch) -> [B, n]``."""

    def __init__(self, dirpath: str | Path, sample_rate: int = 16000, n_items: int = 2) -> None:
        self.dirpath = Path(dirpath)
        self.sample_rate = sample_rate
        self.n_items = n_items
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            self._batch = batch

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._batch is None or not trainer.is_global_zero or not hasattr(pl_module, "sample_audio"):
            return
        if trainer.sanity_checking:
            return
        batch = {k: v[: self.n_items] if torch.is_tensor(v) else v for k, v in self._batch.items()}
        with torch.no_grad():
            audio = pl_module.sample_audio(batch).detach().cpu().numpy()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(audio):
            peak = max(1e-9, float(abs(x).max()))
            sf.write(self.dirpath / f"step{trainer.global_step:07d}_{i}.wav", x / max(1.0, peak), self.sample_rate)
        self._batch = None
