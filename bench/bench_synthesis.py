"""Speed and memory of the DDSP decoder synthesis: reverb(harmonic + noise) at 16 kHz, 250 Hz frames.

Prints, for batch 16 x 4 s and batch 1 x 60 s: wall time of harmonic, noise, reverb and the full chain
(median of 5 runs after 2 warm-ups, inference mode) and the real-time factor (audio seconds produced per wall
second, whole batch); then the peak resident memory of a 10-minute render, measured in a fresh subprocess.

Two f0 ranges: 100-130 Hz (worst case: all 60 harmonics below Nyquist, all computed, the work magenta ddsp
always does) and 196-880 Hz (violin range; harmonics above Nyquist are skipped).

Usage: python bench/bench_synthesis.py [--threads N]
Reference: magenta ddsp 3.7 on TF-CPU on this kind of 2-core machine, full chain 16 x 4 s: 975 ms (tf.function),
1 x 60 s: 901 ms (../shared/reference/peers.md).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

# On a shared or oversubscribed CPU, spin-waiting OpenMP workers make every parallel op wait for a descheduled
# thread: on this 2-core machine, with other jobs running, wall times were 5-30x slower with the default policy.
# Passive waiting avoids that at a cost of microseconds per op. Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the OpenMP setting)

from midi_ddsp.synthesis.ddsp.effects import Reverb  # noqa: E402
from midi_ddsp.synthesis.ddsp.synths import FilteredNoise, HarmonicSynth  # noqa: E402

SAMPLE_RATE, FRAME_RATE, N_HARMONICS, N_BANDS = 16000, 250, 60, 65


def make_controls(batch: int, seconds: float, f0_range: tuple[float, float], seed: int = 0):
    """Plausible frame-rate controls: f0 glides within ``f0_range`` Hz, raw network-like outputs."""
    g = torch.Generator().manual_seed(seed)
    n_frames = int(seconds * FRAME_RATE)
    lo, hi = f0_range
    t = torch.linspace(0, 1, n_frames)
    start = lo + (hi - lo) * torch.rand(batch, 1, generator=g)
    f0 = (start * (hi / lo) ** (0.3 * torch.sin(6.28 * t * seconds / 4))).clamp(lo, hi)[..., None]
    raw_amp = torch.randn(batch, n_frames, 1, generator=g)
    raw_harm = torch.randn(batch, n_frames, N_HARMONICS, generator=g)
    raw_noise = torch.randn(batch, n_frames, N_BANDS, generator=g)
    return f0, raw_amp, raw_harm, raw_noise


class Decoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.harmonic, self.noise, self.reverb = HarmonicSynth(N_HARMONICS), FilteredNoise(N_BANDS), Reverb()

    def prepare(self, f0, raw_amp, raw_harm, raw_noise):
        return self.harmonic.get_controls(raw_amp, raw_harm, f0, SAMPLE_RATE), self.noise.get_controls(raw_noise)

    def forward(self, harm_ctrl, noise_mag, n_samples, ir_index):
        audio = self.harmonic(*harm_ctrl, n_samples, SAMPLE_RATE) + self.noise(noise_mag, n_samples)
        return self.reverb(audio, ir_index)


def timed(fn, repeats: int = 5, warmup: int = 2) -> tuple[float, float, float]:
    """Median and minimum wall time and median process CPU time (all threads) of ``fn()``, in ms."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * min(wall), 1e3 * statistics.median(cpu)


@torch.inference_mode()
def bench_case(decoder: Decoder, batch: int, seconds: float, f0_range) -> None:
    n_samples = int(seconds * SAMPLE_RATE)
    harm_ctrl, noise_mag = decoder.prepare(*make_controls(batch, seconds, f0_range))
    ir_index = torch.arange(batch) % 13
    dry = torch.randn(batch, n_samples) * 0.1
    parts = {
        "harmonic": lambda: decoder.harmonic(*harm_ctrl, n_samples, SAMPLE_RATE),
        "noise": lambda: decoder.noise(noise_mag, n_samples),
        "reverb": lambda: decoder.reverb(dry, ir_index),
        "full": lambda: decoder(harm_ctrl, noise_mag, n_samples, ir_index),
    }
    audio_s = batch * seconds
    label = f"{batch:>2} x {seconds:g} s, f0 {f0_range[0]:g}-{f0_range[1]:g} Hz"
    for name, fn in parts.items():
        median, best, cpu = timed(fn)
        print(f"{label:<32} {name:<9} {median:8.1f} ms (min {best:7.1f}, cpu {cpu:7.1f})  "
              f"{audio_s / (median / 1e3):7.0f}x real time", flush=True)


@torch.inference_mode()
def render_minutes(minutes: float) -> None:
    """Render ``minutes`` of audio (batch 1) and print peak RSS; run in a fresh process."""
    base = _peak_rss_mib()
    decoder = Decoder()
    seconds = 60 * minutes
    harm_ctrl, noise_mag = decoder.prepare(*make_controls(1, seconds, (196, 880)))
    t0, c0 = time.perf_counter(), time.process_time()
    audio = decoder(harm_ctrl, noise_mag, int(seconds * SAMPLE_RATE), torch.tensor([0]))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_mib()
    print(f"{minutes:g}-minute render (f0 196-880 Hz): {wall:.2f} s (cpu {cpu:.2f} s, "
          f"{seconds / wall:.0f}x real time), "
          f"{audio.shape[-1]} samples; peak RSS {peak:.0f} MiB (process after imports: {base:.0f} MiB)", flush=True)


def _peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux VmHWM; ru_maxrss elsewhere, which on Linux can carry
    over the parent's peak through fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--render-minutes", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.render_minutes is not None:
        render_minutes(args.render_minutes)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {SAMPLE_RATE} Hz, {FRAME_RATE} Hz frames, "
          f"{N_HARMONICS} harmonics, {N_BANDS} noise bands, reverb IR 48000 taps")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average {_load()}")
    print("times: median of 5 runs after 2 warm-ups (min; process CPU time); real time from the median")
    decoder = Decoder()
    for batch, seconds in ((16, 4.0), (1, 60.0)):
        for f0_range in ((100.0, 130.0), (196.0, 880.0)):
            bench_case(decoder, batch, seconds, f0_range)
    cmd = [sys.executable, __file__, "--render-minutes", "10"]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    subprocess.run(cmd, check=True)
    print(f"load average at end {_load()} (other processes on the machine slow the wall times)")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
