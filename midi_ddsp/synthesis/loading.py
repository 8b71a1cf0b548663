"""Moved: model files are loaded by :mod:`midi_ddsp.model_folder` (models know nothing of files).

This module only re-exports those names for code that still imports them from here; import them from
``midi_ddsp.model_folder`` instead (this file is to be removed)."""
from __future__ import annotations

from ..model_folder import LoadedModel, load_analysis, load_generator  # noqa: F401

__all__ = ["LoadedModel", "load_analysis", "load_generator"]
