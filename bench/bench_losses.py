"""Speed of the spectral loss and the features on this CPU; prints figures.

    python bench/bench_losses.py [--repeats 5] [--threads N]

Multi-scale spectral loss forward+backward on 16 x 4 s at 16 kHz (magenta ddsp 3.7 on TF-CPU, same
machine type: 544 ms tf.function, 995 ms eager; reference/peers.md), A-weighted loudness and log-mel on
16 x 4 s, and estimate_f0 on one 60 s clip (x real time = audio seconds / wall seconds).
Median of ``repeats`` timed runs after one warm-up. The machine is shared: check `uptime` and compare the
CPU-time column (all threads) when the load average is above the core count.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness, estimate_f0, log_mel
from midi_ddsp.synthesis.ddsp.losses import MultiScaleSpectralLoss

SR = 16000


CPU_S: list[float] = []                                                  # CPU seconds of the last timed()


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``repeats`` runs after a warm-up; its CPU seconds (all threads) go to CPU_S."""
    fn()
    runs, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_S[:] = [statistics.median(cpu)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")

    gen = torch.Generator().manual_seed(0)
    target = torch.randn(16, 4 * SR, generator=gen) * 0.1
    pred0 = target + 0.05 * torch.randn(16, 4 * SR, generator=gen)
    loss_fn = MultiScaleSpectralLoss()

    def loss_step():
        pred = pred0.clone().requires_grad_(True)
        loss_fn(pred, target).backward()

    def loss_fwd():
        with torch.no_grad():
            loss_fn(pred0, target)

    def naive_step():                                                     # same loss, autograd through torch.stft
        pred = pred0.clone().requires_grad_(True)
        loss = 0.0
        for size in loss_fn.fft_sizes:
            hop = size // 4
            n_frames = -(-pred.shape[-1] // hop)
            mags = []
            for x in (pred, target):
                x = torch.nn.functional.pad(x, (0, (n_frames - 1) * hop + size - x.shape[-1]))
                mags.append(torch.stft(x, size, hop, size, torch.hann_window(size), center=False,
                                       return_complex=True).abs())
            loss = loss + (mags[0] - mags[1]).abs().mean()
            loss = loss + (mags[0].clamp_min(1e-5).log() - mags[1].clamp_min(1e-5).log()).abs().mean()
        loss.backward()

    t = timed(loss_step, args.repeats)
    print(f"spectral loss fwd+bwd 16 x 4 s: {t * 1e3:7.1f} ms   (magenta TF tf.function 544 ms: "
          f"{544 / (t * 1e3):.1f}x faster; CPU time {CPU_S[0] * 1e3:.0f} ms)")
    t_naive = timed(naive_step, args.repeats)
    print(f"  same loss via torch.stft autograd: {t_naive * 1e3:7.1f} ms ({t_naive / t:.1f}x slower; "
          f"CPU time {CPU_S[0] * 1e3:.0f} ms)")
    t = timed(loss_fwd, args.repeats)
    print(f"spectral loss fwd only 16 x 4 s: {t * 1e3:7.1f} ms")
    t = timed(lambda: a_weighted_loudness(target, SR), args.repeats)
    print(f"a_weighted_loudness 16 x 4 s:    {t * 1e3:7.1f} ms   ({64 / t:.0f}x real time)")
    t = timed(lambda: log_mel(target, SR), args.repeats)
    print(f"log_mel 16 x 4 s:                {t * 1e3:7.1f} ms   ({64 / t:.0f}x real time)")

    rng = np.random.default_rng(0)
    time_s = np.arange(60 * SR) / SR
    f0_true = 220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * time_s))      # slow glide around A3
    phase = 2 * np.pi * np.cumsum(f0_true) / SR
    clip = sum(0.5 ** k * np.sin((k + 1) * phase) for k in range(10)) * 0.3 + 0.01 * rng.standard_normal(time_s.size)
    t = timed(lambda: estimate_f0(clip, SR), max(1, args.repeats // 2))
    f0, conf = estimate_f0(clip, SR)
    cents = 1200 * np.abs(np.log2(f0[10:-10] / f0_true[::64][10 : f0.size - 10]))
    print(f"estimate_f0 1 x 60 s:            {t * 1e3:7.1f} ms   ({60 / t:.1f}x real time; "
          f"median error {np.median(cents):.2f} cents, p99 {np.percentile(cents, 99):.2f} cents)")


if __name__ == "__main__":
    main()
