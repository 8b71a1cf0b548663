"""The studio session: the open performance, its audio, undo / redo, autosave and the render cache.

Everything a request touches goes through one :class:`Session` and its lock (an ``RLock``): requests are served
one at a time against the session, so concurrent edits cannot interleave and a reader never sees a half-applied
change. Every change is validated completely before anything is modified.

Files, all in the session's work folder (default ``~/.cache/midi-ddsp/studio``, or ``--workdir``), with names
chosen here, never by a client:

- ``session.json``: the open performance (the ``--export-performance`` JSON), its source's name and SHA-256, the
  seed and temperature, and the undo / redo history as note-level changes. Written atomically after every change,
  so a crash or a closed server loses nothing; :meth:`Session.start` resumes it.
- ``render.npz``: the dry stems and curves of the last state and the key (performance, seed, temperature, model)
  they belong to; written a moment after the last change (in the background) so a restart does not re-render.
- ``upload.mid`` / ``export.mid``: transient files for the MIDI reader and writer, removed after use.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midi_ddsp.errors import MidiDDSPError, MidiDDSPWarning
from midi_ddsp.io.atomic import atomic_write
from midi_ddsp.note_level.notes import CONTROL_NAMES, Note, NoteSequence, Performance
from midi_ddsp.note_level.serialization import from_csv, from_json, to_csv, to_json

from . import edits
from .edits import Change, StudioError
from .renderer import Patch, RenderState, wav_bytes

SESSION_FORMAT = "midi-ddsp-studio-session"
MAX_UPLOAD_BYTES = 4 << 20  # 4 MiB: a MIDI or performance file; checked before the body is read in full
HISTORY_LIMIT = 200  # undo steps kept
PATCH_BUDGET_BYTES = 512 << 20  # audio kept for exact undo; older steps are re-rendered instead
CACHE_DELAY_S = 2.0


def default_workdir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "midi-ddsp" / "studio"


def bundled_example() -> Path | None:
    p = Path(__file__).resolve().parents[2] / "examples" / "bach_chorale.mid"
    return p if p.is_file() else None


@dataclass
class Entry:
    """An undo / redo step: the note-level change and, when kept, the audio patch that goes with it
    (``forward``: the patch maps the state before the change to the state after it)."""

    change: Change
    patch: Patch | None = None
    forward: bool = True


class Session:
    """One open performance and everything around it (see module docstring).

    Args:
        model: a loaded :class:`~midi_ddsp.MidiDDSP`.
        workdir: the folder for session.json and the render cache (created).
        seed, temperature: of every render (the f0 sampler); the expression model's takes use their own.
    """

    def __init__(self, model, workdir: str | Path | None = None, seed: int = 0, temperature: float = 1.0):
        self.model = model
        self.workdir = Path(workdir) if workdir is not None else default_workdir()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MidiDDSPError(f"{self.workdir}: cannot create the studio folder ({e.strerror or e})") from None
        self.lock = threading.RLock()
        self.render = RenderState(model, seed, temperature)
        self.seed, self.temperature = int(seed), float(temperature)
        self.perfs: list[Performance] = []
        self.source_name, self.source_sha256 = "", ""
        self.undo_stack: list[Entry] = []
        self.redo_stack: list[Entry] = []
        self.version = 0
        self.warnings: list[str] = []
        self.last = {"kind": "none", "seconds": 0.0, "regions": []}
        self._wav: tuple[int, bytes] | None = None
        self._cache_timer: threading.Timer | None = None
        self.resumed = False

    # ------------------------------------------------------------------------------------------- start
    def start(self, source: str | Path | None = None) -> str:
        """Open ``source`` (a MIDI or performance file given on the command line), or resume the autosaved session
        (also when ``source`` is the file it was opened from), or open the bundled example. Returns a line saying
        which."""
        data = None
        if source is not None:
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise MidiDDSPError(f"{path}: cannot read ({e.strerror or e})") from None
        saved = self._read_autosave()
        if saved is not None and (data is None or saved.get("source_sha256") == _sha(data)):
            self._resume(saved)
            return f"resumed the autosaved session ({self.source_name or 'untitled'}) from {self.workdir}"
        if data is not None:
            self.open_bytes(Path(source).name, data)
            return f"opened {source}"
        example = bundled_example()
        if example is not None:
            self.open_bytes(example.name, example.read_bytes())
            return f"opened the bundled example {example.name}"
        notes = tuple(Note(p, 0.5 * i, 0.5 * i + 0.45, 100, "violin") for i, p in enumerate((67, 69, 71, 72)))
        self._replace([Performance(NoteSequence(notes, "violin", "scale"), np.full((4, 6), 0.5))], "scale", "")
        return "opened a four-note scale (no example found)"

    def _read_autosave(self) -> dict | None:
        path = self.workdir / "session.json"
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != SESSION_FORMAT:
                raise ValueError("not a studio session")
            return doc
        except (ValueError, OSError, UnicodeDecodeError) as e:
            bad = path.with_suffix(".json.bad")
            os.replace(path, bad)
            warnings.warn(f"{path}: unreadable autosave ({e}); moved to {bad.name}, starting afresh",
                          MidiDDSPWarning, stacklevel=2)
            return None

    def _resume(self, doc: dict) -> None:
        perfs = from_json(json.dumps(doc["performance"]), str(self.workdir / "session.json"))
        with self.lock:
            self.source_name = str(doc.get("source_name", ""))
            self.source_sha256 = str(doc.get("source_sha256", ""))
            self.undo_stack = [Entry(Change.from_dict(c)) for c in doc.get("undo", [])]
            self.redo_stack = [Entry(Change.from_dict(c)) for c in doc.get("redo", [])]
            self.perfs = perfs
            t = time.perf_counter()
            if not self._load_cache():
                self.render.full(perfs)
                self._schedule_cache()
            self.last = {"kind": "resume", "seconds": time.perf_counter() - t, "regions": []}
            self.version += 1
            self.resumed = True

    # ------------------------------------------------------------------------------------------- files
    def open_bytes(self, name: str, data: bytes) -> dict:
        """Open an uploaded file: MIDI (by its ``MThd`` header), else a JSON or CSV performance (UTF-8).

        ``name`` is only a label (shown, and used for export file names); nothing is read or written under it.
        Opening starts a new history.
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise StudioError(f"the file is larger than {MAX_UPLOAD_BYTES >> 20} MiB", 413)
        label = _label(name)
        if data[:4] == b"MThd":
            tmp = self.workdir / "upload.mid"
            try:
                tmp.write_bytes(data)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MidiDDSPWarning)
                    read = self.model.read(tmp)
            except MidiDDSPError as e:
                raise StudioError(str(e).replace(str(tmp), label), 422) from None
            finally:
                tmp.unlink(missing_ok=True)
            voices = read.voices
            edits.check_limits([Performance(v, np.zeros((len(v), 6))) for v in voices], self._known())
            if self.model.performance_model is None:
                raise StudioError("the model folder has no expression model: open a performance file instead", 409)
            perfs = self.model.perform(voices, self.model.expression_temperature(1.0), seed=self.seed)  # as render
            self.warnings = list(read.warnings)
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise StudioError(f"{label}: not a MIDI file and not UTF-8 text (open .mid, .csv or .json)",
                                  415) from None
            try:
                perfs = from_json(text, label) if text.lstrip().startswith("{") else from_csv(text, label)
            except MidiDDSPError as e:
                raise StudioError(str(e), 422) from None
            self.warnings = []
        edits.check_limits(perfs, self._known())
        with self.lock:
            self._replace(perfs, label, _sha(data))
            return self.state()

    def _known(self) -> set[str]:
        return {i.name for i in self.model.instruments()}

    def _replace(self, perfs, label: str, sha: str) -> None:
        with self.lock:
            t = time.perf_counter()
            self.render.full(perfs)
            self.perfs, self.source_name, self.source_sha256 = perfs, label, sha
            self.undo_stack, self.redo_stack = [], []
            self.last = {"kind": "full", "seconds": time.perf_counter() - t, "regions": []}
            self.version += 1
            self._saved()

    # ------------------------------------------------------------------------------------------- edits
    def put(self, body: str) -> dict:
        """``PUT /api/performance``: a whole performance or the subset form (see :mod:`.edits`)."""
        doc = edits.parse_body(body)
        with self.lock:
            new, places = edits.performances_from_body(doc, self.perfs)
            edits.check_limits(new, self._known())
            label = "edit" if "voices" not in doc else "replace"
            return self._commit(new, label, places)

    def retake(self, body: str) -> dict:
        """``POST /api/retake``: new controls for the chosen notes from the expression model.

        Body: ``{"notes": [[voice, note], ...], "temperature": 1.0, "seed": 7}``.
        """
        doc = edits.parse_body(body)
        unknown = set(doc) - {"notes", "temperature", "seed"}
        if unknown:
            raise StudioError(f"unknown keys {', '.join(sorted(unknown))} (expected notes, temperature, seed)")
        temperature, seed = doc.get("temperature", 1.0), doc.get("seed", 0)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 5:
            raise StudioError(f"temperature = {temperature!r}: expected a number in 0..5")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31:
            raise StudioError(f"seed = {seed!r}: expected an integer in 0..2147483647")
        notes = doc.get("notes")
        if not isinstance(notes, list) or not notes:
            raise StudioError('"notes" must be a non-empty list of [voice, note] pairs')
        with self.lock:
            if self.model.performance_model is None:
                raise StudioError("the model folder has no expression model (performance.safetensors)", 409)
            chosen: dict[int, list[int]] = {}
            for j, pair in enumerate(notes):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise StudioError(f"notes[{j}]: expected [voice, note]")
                v = edits._index(pair[0], f"notes[{j}]: voice", len(self.perfs))
                chosen.setdefault(v, []).append(edits._index(pair[1], f"notes[{j}]: note", len(self.perfs[v])))
            voices = sorted(chosen)
            fresh = self.model.perform([self.perfs[v].sequence for v in voices], float(temperature), int(seed))
            new = list(self.perfs)
            for v, f in zip(voices, fresh):
                ctl = self.perfs[v].controls.copy()
                rows = sorted(set(chosen[v]))
                ctl[rows] = np.clip(f.controls[rows], edits.CONTROL_MIN, edits.CONTROL_MAX)
                new[v] = self.perfs[v].with_controls(ctl)
            return self._commit(new, "retake", [[v, i] for v in voices for i in sorted(set(chosen[v]))])

    def _commit(self, new: list[Performance], label: str, places) -> dict:
        change = edits.diff(self.perfs, new, label)
        if change.empty:
            return {**self.state(), "changed": False, "selected": places}
        t = time.perf_counter()
        patch = self.render.rerender(new, change)
        kind = "full" if patch.spans and patch.spans[0][0] == "all" else "region"
        self.perfs = new
        self.undo_stack.append(Entry(change, patch, True))
        self.redo_stack.clear()
        self._trim()
        regions = [[int(s[0]), s[1] / self.render.sample_rate, s[2] / self.render.sample_rate]
                   for s in patch.spans if s[0] != "all"]
        self.last = {"kind": kind, "seconds": time.perf_counter() - t, "regions": regions}
        self.version += 1
        self._saved()
        return {**self.state(), "changed": True, "selected": places}

    def undo(self) -> dict:
        return self._step(self.undo_stack, self.redo_stack, backwards=True)

    def redo(self) -> dict:
        return self._step(self.redo_stack, self.undo_stack, backwards=False)

    def _step(self, source: list[Entry], target: list[Entry], backwards: bool) -> dict:
        with self.lock:
            if not source:
                raise StudioError(f"nothing to {'undo' if backwards else 'redo'}", 409)
            entry = source[-1]
            new = edits.apply(self.perfs, entry.change, backwards=backwards)
            t = time.perf_counter()
            if entry.patch is not None:
                self.render.apply_patch(entry.patch, forwards=entry.forward != backwards)
                kind = "restore"
            else:  # history from an earlier run: render the step, keep the patch for the way back
                entry.patch = self.render.rerender(new, edits.diff(self.perfs, new))
                entry.forward = not backwards
                kind = "region"
            source.pop()
            target.append(entry)
            self.perfs = new
            self.last = {"kind": kind, "seconds": time.perf_counter() - t, "regions": []}
            self.version += 1
            self._saved()
            return self.state()

    def _trim(self) -> None:
        del self.undo_stack[:-HISTORY_LIMIT]
        total = 0
        for e in reversed(self.undo_stack):
            if e.patch is not None:
                total += e.patch.nbytes
                if total > PATCH_BUDGET_BYTES:
                    e.patch = None

    # ------------------------------------------------------------------------------------------- reads
    def state(self) -> dict:
        with self.lock:
            r = self.render
            return {"version": self.version, "audio_version": r.version, "source_name": self.source_name,
                    "duration_s": r.duration_s, "sample_rate": r.sample_rate, "frame_rate": r.frame_rate,
                    "voices": [{"name": p.name, "instrument": p.instrument, "notes": len(p)} for p in self.perfs],
                    "can_undo": bool(self.undo_stack), "can_redo": bool(self.redo_stack),
                    "undo_label": self.undo_stack[-1].change.label if self.undo_stack else "",
                    "redo_label": self.redo_stack[-1].change.label if self.redo_stack else "",
                    "instruments": [i.name for i in self.model.instruments()], "controls": list(CONTROL_NAMES),
                    "control_range": [edits.CONTROL_MIN, edits.CONTROL_MAX], "seed": self.seed,
                    "temperature": self.temperature, "gain": r.gain, "last_render": dict(self.last),
                    "can_retake": self.model.performance_model is not None, "warnings": list(self.warnings),
                    "max_upload_bytes": MAX_UPLOAD_BYTES}

    def performance_json(self) -> str:
        with self.lock:
            return to_json(self.perfs)

    def performance_csv(self) -> str:
        with self.lock:
            return to_csv(self.perfs)

    def midi_bytes(self) -> bytes:
        from midi_ddsp.io.midi import write_midi

        with self.lock:
            tmp = self.workdir / "export.mid"
            try:
                write_midi([p.sequence for p in self.perfs], tmp)
                return tmp.read_bytes()
            finally:
                tmp.unlink(missing_ok=True)

    def wav(self) -> bytes:
        with self.lock:
            if self._wav is None or self._wav[0] != self.render.version:
                self._wav = (self.render.version, wav_bytes(self.render.mix, self.render.sample_rate))
            return self._wav[1]

    def curves(self, step: int = 5) -> dict:
        """f0 (Hz, 0 = unvoiced) and loudness (dB) of every voice, every ``step`` frames."""
        with self.lock:
            r = self.render
            n = r.f0_hz.shape[1] // step * step
            loud = r.loudness_db[:, :n].reshape(len(r.f0_hz), -1, step).max(-1) if n else np.zeros((len(r.f0_hz), 0))
            f0 = r.f0_hz[:, :n:step]
            return {"frame_rate": r.frame_rate / step, "audio_version": r.version,
                    "voices": [{"f0_hz": np.round(f, 1).tolist(), "loudness_db": np.round(ld, 1).tolist()}
                               for f, ld in zip(f0, loud)]}

    # ------------------------------------------------------------------------------------- persistence
    def _saved(self) -> None:
        """Autosave the session (atomic) and schedule the render cache; drop the cached WAV."""
        self._wav = None
        doc = {"format": SESSION_FORMAT, "version": 1, "source_name": self.source_name,
               "source_sha256": self.source_sha256, "seed": self.seed, "temperature": self.temperature,
               "model": str(self.model.path), "performance": json.loads(to_json(self.perfs)),
               "undo": [e.change.to_dict() for e in self.undo_stack],
               "redo": [e.change.to_dict() for e in self.redo_stack]}
        with atomic_write(self.workdir / "session.json") as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
        self._schedule_cache()

    def _cache_key(self) -> str:
        gen = Path(str(self.model.path)) / "generator.safetensors"
        stamp = f"{gen.stat().st_size}:{gen.stat().st_mtime_ns}" if gen.is_file() else ""
        h = hashlib.sha256(to_json(self.perfs).encode())
        h.update(f"|{self.seed}|{self.temperature!r}|{self.model.path}|{stamp}".encode())
        return h.hexdigest()

    def _schedule_cache(self) -> None:
        if self._cache_timer is not None:
            self._cache_timer.cancel()
        self._cache_timer = threading.Timer(CACHE_DELAY_S, self.save_cache)
        self._cache_timer.daemon = True
        self._cache_timer.start()

    def save_cache(self) -> None:
        """Write render.npz (the dry stems and curves of the current state) now."""
        with self.lock:
            key, r = self._cache_key(), self.render
            dry, f0, loud = r.dry.copy(), r.f0_hz.copy(), r.loudness_db.copy()
        path = self.workdir / "render.npz"
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), dry=dry, f0=f0, loud=loud)

    def _load_cache(self) -> bool:
        path = self.workdir / "render.npz"
        try:
            with np.load(path) as z:
                if str(z["key"]) != self._cache_key() or z["dry"].shape[0] != len(self.perfs):
                    return False
                self.render.load(self.perfs, z["dry"], z["f0"], z["loud"])
                return True
        except (OSError, KeyError, ValueError):
            return False

    def close(self) -> None:
        """Write the render cache now (on shutdown)."""
        if self._cache_timer is not None:
            self._cache_timer.cancel()
        self.save_cache()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _label(name) -> str:
    """A display label from a client-given file name: its last path part, printable, at most 100 characters."""
    base = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "upload"
    return base[:100]


__all__ = ["Session", "MAX_UPLOAD_BYTES", "default_workdir", "bundled_example"]
