"""A regular (non-editable) install works: the wheel carries the shipped model folder and the training
configs, found without the source tree (README "Limits and levels", package data).

Builds the wheel from a copy of the working tree (``pip wheel --no-deps --no-build-isolation``), installs
it into a fresh venv outside the repository whose dependencies come from the current environment (a
``.pth`` line; nothing is downloaded), then renders the bundled example with the installed ``midi-ddsp``
from a folder outside the repository and composes the training config (the smoke stage: no data folders needed) from the installed conf/.
``.ci/run`` runs the same check (``python tests/test_wheel_install.py``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd=None, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def check_wheel(work: Path) -> str:
    """Build, install and use the wheel under ``work``; returns the render's output line."""
    src, dist, venv, use = work / "src", work / "dist", work / "venv", work / "use"
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO).split("\0")
    for name in filter(None, listed):
        f = REPO / name
        if f.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, src / name)
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w", dist])
    (wheel,) = dist.glob("midi_ddsp-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", wheel])
    use.mkdir()
    shutil.copy2(REPO / "examples" / "bach_chorale.mid", use / "song.mid")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    where = _run([py, "-c", "import midi_ddsp, midi_ddsp.model_files as m, midi_ddsp.training.config as c; "
                            "print(midi_ddsp.__file__); print(m.DEFAULT_CHECKPOINTS); print(c.DEFAULT_CONFIG_DIR); "
                            "c.load_config(['stage=smoke']); print('config ok')"], cwd=use, env=env)
    lines = where.strip().splitlines()
    assert all(str(venv) in line for line in lines[:3]), lines  # the installed copy, not the repository
    assert lines[3] == "config ok"
    out = _run([venv / "bin" / "midi-ddsp", "render", "song.mid", "-o", "song.wav"], cwd=use, env=env)
    assert (use / "song.wav").stat().st_size > 100_000 and "wrote song.wav" in out
    return out.strip()


@pytest.mark.slow
def test_wheel_installs_outside_the_repository_and_renders_the_example(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git working tree")
    check_wheel(tmp_path)


if __name__ == "__main__":  # .ci/run: python tests/test_wheel_install.py
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(check_wheel(Path(d)))
