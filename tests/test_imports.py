"""The package's layering, checked on the code itself: the DSP library stands alone, rendering loads no
training framework, no module imports itself through a loop, the light commands load no torch."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "midi_ddsp"
TRAINING_FRAMEWORKS = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf")


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Package modules ``name`` imports anywhere in its code (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dsp_library_imports_nothing_else_from_the_package():
    known = _modules()
    dsp = {m: p for m, p in known.items() if m.startswith("midi_ddsp.synthesis.ddsp")}
    assert {"midi_ddsp.synthesis.ddsp.streaming", "midi_ddsp.synthesis.ddsp.processors"} <= set(dsp)
    for name, path in dsp.items():
        outside = {m for m in _imports(name, path, known) if not m.startswith("midi_ddsp.synthesis.ddsp")}
        assert not outside, f"{name} imports {outside}"
    # and at run time: importing every module of it loads no other package module (parents' __init__ aside)
    loaded = _run("import importlib, json, sys\n"
                  f"for m in {sorted(dsp)!r}: importlib.import_module(m)\n"
                  "print(json.dumps(sorted(k for k in sys.modules if k.startswith('midi_ddsp'))))")
    assert set(loaded) - set(dsp) <= {"midi_ddsp", "midi_ddsp.synthesis"}


def test_dsp_library_exports_its_public_names():
    import midi_ddsp.synthesis.ddsp as ddsp

    for name in ddsp.__all__:
        assert getattr(ddsp, name) is not None
    assert ddsp.Chain.__module__.endswith("processors") and ddsp.HarmonicStream.__module__.endswith("streaming")


def test_no_import_cycles():
    known = _modules()
    graph = {m: _imports(m, p, known) for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(m, trail):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(d):] + [d]))
            if d not in state:
                visit(d, trail + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_io_and_note_level_import_in_one_direction():
    known = _modules()
    for name, path in known.items():
        if name.startswith("midi_ddsp.note_level"):
            assert not {m for m in _imports(name, path, known) if m.startswith("midi_ddsp.io")}, name


_RENDER = """
import json, sys, numpy as np
from midi_ddsp.pipeline import MidiDDSP
from midi_ddsp.note_level.notes import Note, NoteSequence, Performance
m = MidiDDSP.from_pretrained(sys.argv[1])
perf = Performance(NoteSequence((Note(60, 0.0, 0.3), Note(64, 0.3, 0.6)), 'violin'), np.full((2, 6), 0.5))
r = m.render(SOURCE, seed=0)
assert r.mix.size and np.isfinite(r.mix).all()
print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))
"""


def _rendered_modules(folder: Path, source: str) -> set[str]:
    code = _RENDER.replace("SOURCE", source)
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_loading_a_model_and_rendering_imports_no_training_framework(tmp_path):
    from midi_ddsp.random_models import write_random_checkpoints

    folder = write_random_checkpoints(tmp_path / "m", width=8, f0_hidden=8, reverb_length=800, performance=False)
    loaded = _rendered_modules(folder, "perf")
    assert not loaded & set(TRAINING_FRAMEWORKS), loaded & set(TRAINING_FRAMEWORKS)


def test_rendering_midi_with_the_expression_model_imports_no_training_framework(tmp_path):
    from midi_ddsp.random_models import write_random_checkpoints

    folder = write_random_checkpoints(tmp_path / "m", width=8, f0_hidden=8, reverb_length=800)
    loaded = _rendered_modules(folder, "perf.sequence")  # notes: the expression model performs them
    assert not loaded & set(TRAINING_FRAMEWORKS), (
        f"{sorted(loaded & set(TRAINING_FRAMEWORKS))} imported (the expression model's loader pulls "
        "midi_ddsp.performance.dataset, which imports pytorch_lightning)")


@pytest.mark.parametrize("argv", [["instruments"], ["render", "--help"]])
def test_light_commands_load_no_torch(argv):
    loaded = _run("import json, sys\nfrom midi_ddsp.cli import main\n"
                  "import contextlib, io\n"
                  "with contextlib.redirect_stdout(io.StringIO()):\n"
                  "    try:\n"
                  f"        main({argv!r})\n"
                  "    except SystemExit:\n"
                  "        pass\n"
                  "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))")
    assert "torch" not in loaded
