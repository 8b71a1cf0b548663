"""Speed of the performance prior on this machine: training steps/s of the stage config
(conf/stage/performance.yaml, model and batch as configured) on synthetic data, and inference time of
predict_performance(s).

    nice python bench/performance_speed.py [--threads 1] [--steps 30] [Hydra overrides, e.g. stage.data.batch_size=32]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from hydra.utils import instantiate

from midi_ddsp.note_level.notes import Note, NoteSequence
from midi_ddsp.performance.dataset import synthetic_voice, write_synthetic_corpus
from midi_ddsp.performance.sampling import predict_performance, predict_performances
from midi_ddsp.training.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_corpus(tmp, n_pieces=60, notes_per_piece=200)
        cfg = load_config(["stage=performance", f"stage.data.data_dir={tmp}", *args.overrides]).stage
        task, dm = instantiate(cfg.task), instantiate(cfg.data)
        model = task.model
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loader = dm.train_dataloader()
        it = iter(loader)
        batches = [next(it) for _ in range(min(args.steps, 10, len(loader)))]
        model.train()
        for i in range(args.steps + 3):
            if i == 3:
                start, cpu_start = time.perf_counter(), time.process_time()
            b = batches[i % len(batches)]
            loss = model.loss(b, cfg.task.prev_dropout)["loss"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.gradient_clip)
            opt.step()
        step_s = (time.perf_counter() - start) / args.steps
        cpu_step_s = (time.process_time() - cpu_start) / args.steps
        start = time.perf_counter()
        n = 0
        for _ in loader:
            n += 1
        data_s = (time.perf_counter() - start) / n
    model.eval()
    rng = np.random.default_rng(0)
    voices = []
    for inst in (0, 1, 2, 3):
        pitch, on, off, vel = synthetic_voice(300, inst, rng)
        voices.append(NoteSequence([Note(int(p), a, b, int(v)) for p, a, b, v in zip(pitch, on, off, vel)],
                                   ["violin", "viola", "cello", "double bass"][inst]))
    predict_performance(model, voices[0], 1.0, seed=0)
    start = time.perf_counter()
    predict_performance(model, voices[0], 1.0, seed=0)
    one = time.perf_counter() - start
    start = time.perf_counter()
    predict_performances(model, voices, 1.0, seed=0)
    four = time.perf_counter() - start
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}, {n_params / 1e3:.0f}k parameters, "
          f"batch {cfg.data.batch_size} x window {cfg.data.window}")
    print(f"train: {1 / step_s:.2f} steps/s wall ({step_s * 1000:.0f} ms/step; CPU time "
          f"{cpu_step_s * 1000:.0f} ms/step = {1 / cpu_step_s:.2f} steps/s on an idle core; "
          f"{cfg.data.batch_size * cfg.data.window / step_s:.0f} tokens/s); data loading {data_s * 1000:.0f} ms/batch "
          f"(main process)")
    print(f"inference: 1 voice x 300 notes {one * 1000:.0f} ms; 4 voices x 300 notes (one batch) {four * 1000:.0f} ms")


if __name__ == "__main__":
    main()
