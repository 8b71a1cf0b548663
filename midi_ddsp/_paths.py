"""Where the shipped model folder (``checkpoints/``) and the training configs (``conf/``) are.

In a source tree (a clone, or an editable install) they are the repository's top-level folders. A regular
install (a wheel, from PyPI or ``pip install .``) carries copies inside the package, as
``midi_ddsp/_data/checkpoints`` and ``midi_ddsp/_data/conf`` (copied at build time by ``setup.py``), found with
:mod:`importlib.resources`. No torch here: the CLI reads these paths before anything heavy is imported.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    """The shipped folder ``name`` (``"checkpoints"`` or ``"conf"``): the source tree's when this package
    runs from one (``pyproject.toml`` beside it), else the installed package's copy."""
    if (_REPO / "pyproject.toml").is_file() and (_REPO / name).is_dir():
        return _REPO / name
    return Path(str(files("midi_ddsp") / "_data" / name))


__all__ = ["shipped"]
