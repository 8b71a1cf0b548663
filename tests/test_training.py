"""Training infrastructure: config validation, resume after SIGKILL, DDP on CPU, safe weight loading."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from midi_ddsp.checkpoint import CheckpointError, load_into, load_weights, safe_torch_load, save_weights
from midi_ddsp.cli import main as cli_main
from midi_ddsp.training.config import ConfigError, load_config

SMOKE = ["stage=smoke", "trainer.progress_bar=false"]


@pytest.mark.parametrize("override, words", [
    ("stage.task.learning_rate=-0.1", "must be positive"),
    ("stage.task.widthh=3", "Could not override"),
    ("+stage.task.widthh=3", "unknown option"),
    ("stage.task.width=wide", "expected int"),
    ("trainer.nonsense=1", "bad config override"),
    ("stage=nonexistent_stage", "bad config override"),
    ("resume=/no/such/file.ckpt", "resume"),
])
def test_bad_config_fails_before_training_with_one_line(override, words, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(SMOKE + [f"run_dir={tmp_path}", override])
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("overrides, words", [
    (["stage.normalizer_from=null"], "needs stage.normalizer_from"),
    (["+stage.task.consistency_controls=[vibrato]"], "vibrato cannot be measured"),
])
def test_consistency_loss_config_errors_are_one_line(overrides, words, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(["stage=generator", f"run_dir={tmp_path}", *overrides])
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cli_reports_bad_override_in_one_line(capsys, tmp_path):
    code = cli_main(["train", *SMOKE, f"run_dir={tmp_path}", "stage.task.learning_rate=-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "learning_rate" in err[0]


def _train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "midi_ddsp.cli", "train", *SMOKE, f"run_dir={run_dir}",
            "checkpoint.every_n_steps=2", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_train_cmd(run_dir, "stage.max_steps=400"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    killed_at = safe_torch_load(ckpt)["global_step"]
    assert 0 < killed_at < 400
    done = subprocess.run(_train_cmd(run_dir, "stage.max_steps=" + str(killed_at + 6)), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout
    assert safe_torch_load(ckpt)["global_step"] == killed_at + 6
    tensors, _, extra = load_weights(run_dir / "model.safetensors", "analysis")
    assert extra["global_step"] == killed_at + 6
    assert all(torch.isfinite(t).all() for t in tensors.values())


DDP_SCRIPT = """
import sys, torch
from midi_ddsp.training.config import load_config
from midi_ddsp.training.runner import run
cfg = load_config(sys.argv[2:])
result = run(cfg)
flat = torch.cat([p.detach().flatten() for p in result.task.parameters()])
rank = result.trainer.global_rank
torch.save({"rank": rank, "world": result.trainer.world_size, "params": flat}, f"{sys.argv[1]}/rank{rank}.pt")
"""


@pytest.mark.slow
def test_ddp_two_processes_on_cpu_keep_identical_parameters(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(script), str(tmp_path), *SMOKE, f"run_dir={tmp_path / 'run'}",
                          "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                          "stage.max_steps=4"], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (safe_torch_load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert torch.equal(r0["params"], r1["params"])


class _Bomb:
    def __reduce__(self):
        return (os.system, (f"touch {_Bomb.marker}",))


def test_pickle_bomb_is_refused_without_running_it(tmp_path):
    _Bomb.marker = str(tmp_path / "pwned")
    bomb = tmp_path / "last.ckpt"
    with open(bomb, "wb") as f:
        pickle.dump({"state_dict": _Bomb()}, f)
    with pytest.raises(CheckpointError):
        safe_torch_load(bomb)
    with pytest.raises(CheckpointError):
        load_weights(bomb, "analysis")
    assert not (tmp_path / "pwned").exists()


def test_weights_round_trip_and_corrupt_or_mismatched_files_fail_clearly(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_weights(tmp_path / "m.safetensors", model.state_dict(), "analysis", {"width": 3}, half=True)
    tensors, config, _ = load_weights(path, "analysis")
    assert config == {"width": 3}
    assert torch.allclose(tensors["weight"], model.weight.detach(), atol=1e-3)

    with pytest.raises(CheckpointError, match="expected 'generator'"):
        load_weights(path, "generator")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_weights(truncated, "analysis")
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(CheckpointError):
        load_weights(garbage, "analysis")
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(tmp_path / "missing.safetensors", "analysis")
    with pytest.raises(CheckpointError, match="shape of weight"):
        load_into(torch.nn.Linear(4, 2), tensors, path)

    from safetensors.torch import save_file
    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "midi-ddsp", "kind": "analysis",
                                                             "config": "{}", "instruments": '["kazoo"]'})
    with pytest.raises(CheckpointError, match="trained for instruments"):
        load_weights(foreign, "analysis")


def test_warm_start_takes_the_network_not_the_reverb(tmp_path):
    from midi_ddsp.training.analysis_task import AnalysisTask
    from midi_ddsp.training.generator_task import GeneratorTask
    from midi_ddsp.training.runner import warm_start

    torch.manual_seed(0)
    source = AnalysisTask(n_mels=0, width=16, instrument_dim=4, reverb_length=1000, sample_rate=16000)
    source.export(tmp_path / "analysis.safetensors")
    torch.manual_seed(1)
    target = AnalysisTask(n_mels=0, width=16, instrument_dim=4, reverb_length=1000, sample_rate=16000)
    reverb_before = target.synth.reverb.irs.detach().clone()
    warm_start(target, str(tmp_path / "analysis.safetensors"))
    for (name, a), b in zip(source.model.state_dict().items(), target.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(target.synth.reverb.irs, reverb_before)
    with pytest.raises(CheckpointError):        # an analysis file is not a generator
        warm_start(GeneratorTask(width=16, f0_hidden=16, reverb_length=1000, sample_rate=16000), str(tmp_path / "analysis.safetensors"))
    with pytest.raises(CheckpointError):        # same kind, other sizes: one-line shape error
        warm_start(AnalysisTask(n_mels=0, width=8, instrument_dim=4, reverb_length=1000, sample_rate=16000),
                   str(tmp_path / "analysis.safetensors"))
