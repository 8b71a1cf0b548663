"""Find training pieces on disk: our soundfont corpus, URMP's layout, folders of wav + mid pairs, or folders of
recordings without any annotation (``audio``: the feature cache transcribes them).

Every loader returns a list of :class:`PieceSource`: where the audio is, which instrument plays it, the
annotated notes, and (when known) ground-truth curves. Loaders only read annotations; audio is read
and checked by the feature cache (:mod:`midi_ddsp.data.cache`), which records a reason for each file
it has to skip. Annotation problems found here are returned as ``(path, reason)`` pairs, never raised.

URMP layout (one folder per piece, e.g. ``01_Jupiter_vn_vc/``)::

    AuSep_1_vn_01_Jupiter.wav    one stem per track: AuSep_<track>_<instrument abbr>_<NN>_<title>.wav
    Notes_1_vn_01_Jupiter.txt    one note per line: onset (s), pitch (MIDI number, may be fractional;
                                 values above 127 are read as Hz), duration (s); whitespace separated
    F0s_1_vn_01_Jupiter.txt      optional: time (s), f0 (Hz; 0 = unvoiced); used as ground-truth f0

Pairs layout: ``name.wav`` next to ``name.mid`` (or ``.midi``), the MIDI aligned to the audio and holding
one monophonic line. The instrument comes from the MIDI program (see :func:`midi_ddsp.io.midi.load_midi`)
unless ``instrument`` is given.

Audio layout: any ``*.wav``/``.flac``/``.ogg``/``.aif(f)`` under the folder, one monophonic instrument
(``instrument``, required) in all of them; no notes are read (see :func:`audio_pieces`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midi_ddsp.instruments import UnknownInstrumentError, by_name


@dataclass
class PieceSource:
    """One piece to featurise.

    Attributes:
        id: unique id within its source (used for file names and the split).
        audio_path: the audio file.
        instrument: canonical instrument name.
        pitch, onset_s, offset_s, velocity: annotated notes ``[n_notes]`` (MIDI, seconds, 1..127).
        true_curves: known ground-truth frame curves (e.g. ``{"f0_hz": [F]}``) at ``true_frame_rate``; or
            for URMP, ``{"f0_times_s": [...], "f0_hz": [...]}`` point annotations.
        group: pieces of one group (e.g. the URMP piece the stems came from, or the melody a corpus piece
            performs) always land in the same train/valid/test split.
        meta: anything else worth keeping in the manifest.
    """

    id: str
    audio_path: str
    instrument: str
    pitch: np.ndarray
    onset_s: np.ndarray
    offset_s: np.ndarray
    velocity: np.ndarray
    true_curves: dict = field(default_factory=dict)
    true_frame_rate: float | None = None
    group: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_notes(self) -> int:
        return int(len(self.pitch))


def _notes_arrays(pitch, onset, offset, velocity=None):
    pitch = np.asarray(pitch, dtype=np.int64)
    onset = np.asarray(onset, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    vel = np.full(pitch.shape, 100, np.int64) if velocity is None else np.asarray(velocity, dtype=np.int64)
    order = np.argsort(onset, kind="stable")
    pitch, onset, offset, vel = pitch[order], onset[order], offset[order], vel[order]
    # one monophonic line: a note that overlaps the next one is cut at the next onset
    offset[:-1] = np.minimum(offset[:-1], onset[1:])
    keep = offset > onset + 1e-6
    return pitch[keep], onset[keep], offset[keep], np.clip(vel[keep], 1, 127)


# ---- our soundfont corpus ------------------------------------------------------------------------
def corpus_pieces(corpus_dir: str | Path, load_curves: bool = True) -> tuple[list[PieceSource], list[tuple[str, str]]]:
    """Pieces of a corpus built by :func:`midi_ddsp.data.corpus.build_corpus` (status ok only).

    ``true_curves`` holds the performer's frame curves (f0_hz, expression_db, cents, cc11, velocity,
    note_index) at 250 Hz; ``group`` is the performed melody's source file, so every voice of a chorale
    falls in the same split.
    """
    from midi_ddsp.data.corpus import load_manifest
    from midi_ddsp.data.performer import PerformedPiece

    root = Path(corpus_dir)
    out, problems = [], []
    for e in load_manifest(root, ok_only=True):
        npz = root / e["files"]["npz"]
        wav = root / e["files"]["wav"]
        try:
            perf = PerformedPiece.load(npz)
        except Exception as ex:  # noqa: BLE001
            problems.append((str(npz), f"unreadable annotation: {type(ex).__name__}: {ex}"))
            continue
        n = perf.notes
        curves = {}
        if load_curves:
            curves = {k: perf.curves[k] for k in ("f0_hz", "expression_db", "cents", "cc11", "velocity", "note_index")}
        p, a, b, v = _notes_arrays(n["pitch"], n["onset_s"], n["offset_s"], n["velocity"])
        out.append(PieceSource(id=e["id"], audio_path=str(wav), instrument=perf.instrument, pitch=p, onset_s=a,
                               offset_s=b, velocity=v, true_curves=curves, true_frame_rate=perf.frame_rate,
                               group=e["melody"].split("#")[0].split("@")[0],
                               meta={"melody": e["melody"], "duration_s": e["duration_s"]}))
    return out, problems


# ---- URMP --------------------------------------------------------------------------------------
_AUSEP = re.compile(r"^AuSep_(\d+)_([A-Za-z]+)_(\d+)_(.+)\.wav$")


def read_urmp_notes(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a URMP ``Notes_*.txt``: returns (pitch int [N], onset_s [N], offset_s [N]).

    Raises ValueError on malformed lines (the caller records the reason).
    """
    rows = []
    for ln, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) < 3:
            raise ValueError(f"{path}:{ln}: expected onset, pitch, duration; got {line!r}")
        try:
            onset, pitch, dur = float(parts[0]), float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(f"{path}:{ln}: not numbers: {line!r}") from None
        if not (np.isfinite(onset) and np.isfinite(pitch) and np.isfinite(dur)) or dur <= 0 or onset < 0:
            raise ValueError(f"{path}:{ln}: bad values {line!r}")
        if pitch > 127:  # given in Hz
            pitch = 69 + 12 * np.log2(pitch / 440.0)
        rows.append((onset, int(round(pitch)), onset + dur))
    if not rows:
        raise ValueError(f"{path}: no notes")
    arr = np.array(rows, dtype=np.float64)
    order = np.argsort(arr[:, 0], kind="stable")
    arr = arr[order]
    return arr[:, 1].astype(np.int64), arr[:, 0], arr[:, 2]


def urmp_pieces(root: str | Path) -> tuple[list[PieceSource], list[tuple[str, str]]]:
    """All ``AuSep_*.wav`` stems under ``root`` that have a matching ``Notes_*.txt``."""
    root = Path(root)
    out, problems = [], []
    for wav in sorted(root.rglob("AuSep_*.wav")):
        m = _AUSEP.match(wav.name)
        if not m:
            problems.append((str(wav), "file name does not follow AuSep_<track>_<inst>_<NN>_<title>.wav"))
            continue
        track, abbr, num, title = m.groups()
        try:
            inst = by_name(abbr).name
        except UnknownInstrumentError:
            problems.append((str(wav), f"unknown instrument abbreviation {abbr!r}"))
            continue
        stem = wav.name[len("AuSep_"):-len(".wav")]
        notes_path = wav.with_name(f"Notes_{stem}.txt")
        if not notes_path.is_file():
            problems.append((str(wav), f"missing annotation {notes_path.name}"))
            continue
        try:
            pitch, onset, offset = read_urmp_notes(notes_path)
        except (OSError, ValueError) as e:
            problems.append((str(wav), f"bad annotation: {e}"))
            continue
        curves = {}
        f0_path = wav.with_name(f"F0s_{stem}.txt")
        if f0_path.is_file():
            try:
                f0 = np.loadtxt(f0_path, ndmin=2)
                curves = {"f0_times_s": f0[:, 0], "f0_hz": f0[:, 1]}
            except ValueError:
                pass
        p, a, b, v = _notes_arrays(pitch, onset, offset)
        out.append(PieceSource(id=f"urmp_{num}_{title}_{track}_{abbr}", audio_path=str(wav), instrument=inst,
                               pitch=p, onset_s=a, offset_s=b, velocity=v, true_curves=curves,
                               group=f"urmp_{num}_{title}", meta={"notes": str(notes_path)}))
    return out, problems


# ---- wav + mid pairs -----------------------------------------------------------------------------
def pair_pieces(folder: str | Path, instrument: str | None = None
                ) -> tuple[list[PieceSource], list[tuple[str, str]]]:
    """``name.wav`` + ``name.mid`` pairs in ``folder`` (recursive)."""
    from midi_ddsp.io.midi import load_midi

    folder = Path(folder)
    out, problems = [], []
    for wav in sorted(folder.rglob("*.wav")):
        mid = next((wav.with_suffix(s) for s in (".mid", ".midi", ".MID") if wav.with_suffix(s).is_file()), None)
        if mid is None:
            problems.append((str(wav), "no matching .mid file"))
            continue
        try:
            res = load_midi(mid, instrument_override=instrument)
        except Exception as e:  # noqa: BLE001 - corrupt/empty MIDI: record and go on
            problems.append((str(wav), f"bad MIDI {mid.name}: {type(e).__name__}: {e}"))
            continue
        seqs = [s for s in res.sequences if len(s) > 0]
        if not seqs:
            problems.append((str(wav), f"{mid.name} has no notes"))
            continue
        if len(seqs) > 1:
            problems.append((str(wav), f"{mid.name} holds {len(seqs)} voices; a pair needs one monophonic line"))
            continue
        seq = seqs[0]
        p, a, b, v = _notes_arrays(seq.pitches, seq.onsets_s, seq.offsets_s, seq.velocities)
        rel = wav.relative_to(folder).with_suffix("")
        out.append(PieceSource(id=str(rel).replace("/", "__"), audio_path=str(wav),
                               instrument=seq.instrument or (instrument or "violin"), pitch=p, onset_s=a,
                               offset_s=b, velocity=v, group=str(rel), meta={"midi": str(mid)}))
    return out, problems


# ---- recordings without annotation ------------------------------------------------------------
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")


def audio_pieces(folder: str | Path, instrument: str | None) -> tuple[list[PieceSource], list[tuple[str, str]]]:
    """Every audio file in ``folder`` (recursive), all played by ``instrument``, without notes: the feature
    cache transcribes each one itself (``meta["transcribe"]``; :func:`midi_ddsp.recording.transcribe_recording`).

    Raises:
        ValueError: ``instrument`` is missing or unknown (one instrument for the whole folder).
    """
    if not instrument:
        raise ValueError("source=audio needs instrument=NAME (the instrument that plays every recording)")
    inst = by_name(instrument).name
    folder = Path(folder)
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
    stems = [str(f.relative_to(folder).with_suffix("")).replace("/", "__") for f in files]
    clash = {s for s in stems if stems.count(s) > 1}  # a.wav next to a.flac: keep the suffix in the id
    out = []
    empty = np.zeros(0)
    for f, stem in zip(files, stems):
        pid = f"{stem}_{f.suffix.lower().lstrip('.')}" if stem in clash else stem
        # id and group as source=pairs gives them: a folder of pairs lands in the same splits either way
        out.append(PieceSource(id=pid, audio_path=str(f), instrument=inst, pitch=empty.astype(np.int64),
                               onset_s=empty, offset_s=empty, velocity=empty.astype(np.int64),
                               group=str(f.relative_to(folder).with_suffix("")),
                               meta={"transcribe": True}))
    problems = [] if out else [(str(folder), f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in the folder")]
    return out, problems


def find_pieces(source: str, source_dir: str | Path, instrument: str | None = None
                ) -> tuple[list[PieceSource], list[tuple[str, str]]]:
    """Dispatch on ``source``: "corpus", "urmp", "pairs" or "audio"."""
    if not Path(source_dir).exists():
        raise FileNotFoundError(f"{source} source directory {source_dir} does not exist")
    if source == "audio":
        return audio_pieces(source_dir, instrument)
    if source == "corpus":
        return corpus_pieces(source_dir)
    if source == "urmp":
        return urmp_pieces(source_dir)
    if source == "pairs":
        return pair_pieces(source_dir, instrument)
    raise ValueError(f"unknown source {source!r}; choose corpus, urmp, pairs or audio")
