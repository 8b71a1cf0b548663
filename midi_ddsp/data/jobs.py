"""Run independent jobs (one per piece or file) in worker processes, with a progress bar."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from tqdm import tqdm

J = TypeVar("J")
R = TypeVar("R")


def progress(it: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    """``it`` wrapped in a progress bar when ``enabled``."""
    return tqdm(it, total=total, desc=desc, mininterval=2.0) if enabled else it


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], n_workers: int, desc: str, show: bool,
             chunksize: int = 1) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in completion order; in ``n_workers`` spawned processes when > 1.

    ``fn`` must be a module-level function (picklable) that catches its own per-job errors, so one bad job
    never stops the others.
    """
    if n_workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(n_workers) as pool:
            yield from progress(pool.imap_unordered(fn, jobs, chunksize=chunksize), len(jobs), desc, show)
    else:
        for job in progress(jobs, len(jobs), desc, show):
            yield fn(job)


def run_journaled(fn: Callable[[J], dict], jobs: Sequence[J], n_workers: int, desc: str, show: bool,
                  journal: str | Path, done: dict[str, dict]) -> None:
    """``run_jobs`` whose result dicts are appended to ``journal`` (JSON lines, flushed one by one, so an
    interrupted run resumes from what finished) and stored in ``done`` under their ``"id"``."""
    with open(journal, "a") as f:
        for entry in run_jobs(fn, jobs, n_workers, desc, show):
            f.write(json.dumps(entry) + "\n")
            f.flush()
            done[entry["id"]] = entry
