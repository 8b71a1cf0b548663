"""Run one training stage from a validated config: build task, data and Lightning trainer; resume; export."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger

from ..checkpoint import load_into, load_weights
from .config import ConfigError
from .callbacks import AudioSamples, ExportWeights, PeriodicCheckpoint


def latest_checkpoint(run_dir: Path) -> Path | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    t = cfg.trainer
    callbacks = [
        PeriodicCheckpoint(run_dir / "checkpoints", cfg.checkpoint.every_n_steps, cfg.checkpoint.every_minutes),
        ExportWeights(cfg.export_path, cfg.checkpoint.every_n_steps),
        AudioSamples(run_dir / "samples"),
    ]
    return pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=cfg.stage.max_steps, max_epochs=-1,
        val_check_interval=cfg.stage.val_every_n_steps, check_val_every_n_epoch=None,
        limit_val_batches=cfg.stage.val_batches, gradient_clip_val=cfg.stage.gradient_clip,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar,
        enable_checkpointing=False, callbacks=callbacks, default_root_dir=str(run_dir),
        logger=CSVLogger(str(run_dir), name="logs", version=f"{datetime.now():%Y%m%d-%H%M%S}"),
        num_sanity_val_steps=0,
    )


def warm_start(task: pl.LightningModule, path: str) -> None:
    """Start ``task.model`` from exported weights of the same kind (fine-tuning). Only the network is taken:
    the synthesizer (reverb bank) stays as the task built or ``init_from`` loaded it. Weights trained at
    another sample rate (other harmonic / noise-band counts) are taken with their output head mapped
    (:func:`~midi_ddsp.training.rates.resize_head`)."""
    kind = getattr(task, "export_kind", None)
    if kind is None:
        raise ConfigError(f"stage.warm_start: {type(task).__name__} cannot be warm-started")
    tensors, config, _ = load_weights(path, kind)
    state = {k[len("model."):]: v.float() for k, v in tensors.items() if k.startswith("model.")}
    hp = task.hparams
    sizes = ("n_harmonics", "n_noise_bands", "sample_rate")
    old = tuple(int(config[k]) for k in sizes) if all(k in config for k in sizes) else None
    new = tuple(int(hp[k]) for k in sizes) if all(k in hp for k in sizes) else None
    if old is not None and new is not None and old != new:  # another rate: the output head is mapped row by row, the rest of the network is kept
        from .rates import resize_head

        for name in ("head.proj.weight", "head.proj.bias"):
            if name in state:
                state[name] = resize_head(state[name], (old[0], new[0]), (old[1], new[1]), (old[2], new[2]))
        print(f"warm start: {path} at {old[2]} Hz ({old[0]} harmonics, {old[1]} noise bands) -> {new[2]} Hz "
              f"({new[0]}, {new[1]}): output head mapped")
    own = task.model.state_dict()
    added = sorted(k for k in own if k.startswith("head.envelope.") and k not in state)
    if added:  # a frequency envelope the exported network lacks starts at zero gain: the same network
        print(f"warm start: {path} has no frequency envelope; it starts flat ({len(added)} tensors)")
        state.update({k: own[k] for k in added})
    load_into(task.model, state, path)


@dataclass
class TrainResult:
    task: pl.LightningModule
    trainer: pl.Trainer
    export_path: Path


def run(cfg: DictConfig) -> TrainResult:
    """Train the configured stage; the inference weights are exported to ``cfg.export_path``."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    task = instantiate(cfg.stage.task)
    data = instantiate(cfg.stage.data)
    init = cfg.stage.get("init_from")
    if init and hasattr(task, "initialize_from"):
        task.initialize_from(init)
    warm = cfg.stage.get("warm_start")
    if warm:
        warm_start(task, warm)
    normalizer = cfg.stage.get("normalizer_from")
    if normalizer and hasattr(task, "attach_normalizer"):
        task.attach_normalizer(load_weights(normalizer, "control_normalizer")[0])
    ckpt = None
    if cfg.resume == "auto":
        ckpt = latest_checkpoint(run_dir)
    elif cfg.resume != "never":
        ckpt = Path(cfg.resume)
    trainer = build_trainer(cfg, run_dir)
    if trainer.is_global_zero:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        if ckpt is not None:
            print(f"[{datetime.now():%H:%M:%S}] resuming from {ckpt}")
    # Our own checkpoints hold only tensors and plain containers, so they load with weights_only=True.
    trainer.fit(task, datamodule=data, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    return TrainResult(task, trainer, Path(cfg.export_path))
