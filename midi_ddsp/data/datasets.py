"""Datasets over a feature cache: 4 s clips for the synthesis level, whole pieces for the performance level.

Splits are by *group* (a corpus piece's melody source file, a URMP piece, a pair's file), decided by a hash
of the group name, so every voice/instrument rendering of one chorale falls in the same split, and adding
pieces never moves an existing piece to another split.

Clip item (``SynthesisClipDataset[i]``), F = clip_samples // hop (1000 for 64000 samples at 16 kHz/250 Hz):

    audio            float32 [clip_samples]      waveform (linear, full scale 1)
    f0_hz            float32 [F, 1]              tracker f0 (Hz)
    f0_confidence    float32 [F, 1]              tracker periodicity in [0, 1]
    true_f0_hz       float32 [F, 1]              ground-truth f0 (Hz); the tracker's where unknown
    has_true_f0      bool    []                  whether true_f0_hz is ground truth
    loudness_db      float32 [F, 1]              A-weighted loudness (dB)
    note_features    float32 [F, 4]              pitch/127, onset flag, offset flag, position in note
    frame_pitch      int64   [F]                 MIDI pitch per frame (0 on rests)
    note_index       int64   [F]                 index of the note within the clip (0.., -1 on rests)
    instrument_id    int64   []
    piece_index      int64   []                  index into the dataset's ``pieces``
    start_sample     int64   []                  clip start within the piece (a multiple of hop)

Frame i of a clip is centred on its sample ``i * hop`` (it is piece frame ``start_sample / hop + i``).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from midi_ddsp.data import cache as cache_mod

SPLITS = ("train", "valid", "test")


def split_of(group: str, valid_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = "midi-ddsp") -> str:
    """Deterministic split of a group name: hash -> [0, 1) -> valid / test / train."""
    h = int.from_bytes(hashlib.sha1(f"{salt}:{group}".encode()).digest()[:8], "big") / 2.0 ** 64
    if h < valid_fraction:
        return "valid"
    if h < valid_fraction + test_fraction:
        return "test"
    return "train"


def split_entries(entries: list[dict], split: str, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                  salt: str = "midi-ddsp") -> list[dict]:
    """The manifest entries of one split (``split="all"`` keeps everything), in manifest order."""
    if split == "all":
        return list(entries)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")
    return [e for e in entries if split_of(e.get("group") or e["id"], valid_fraction, test_fraction, salt) == split]


class _PieceStore:
    """Lazy per-piece feature loading (small LRU), shared by the datasets."""

    def __init__(self, cache_dir: str | Path, entries: list[dict]):
        self.cache_dir = Path(cache_dir)
        self.entries = entries
        self._load = lru_cache(maxsize=8)(self._load_uncached)

    def _load_uncached(self, i: int) -> dict:
        return cache_mod.load_features(self.cache_dir, self.entries[i])

    def features(self, i: int) -> dict:
        return self._load(i)

    def audio_path(self, i: int) -> Path:
        return cache_mod.audio_path(self.cache_dir, self.entries[i])

    def __getstate__(self):  # DataLoader workers: don't pickle the cache
        return {"cache_dir": self.cache_dir, "entries": self.entries}

    def __setstate__(self, state):
        self.__init__(state["cache_dir"], state["entries"])


class SynthesisClipDataset(Dataset):
    """Fixed-length clips (default 4 s = 64000 samples = 1000 frames) cut from cached pieces.

    Args:
        cache_dir: a feature cache written by :func:`midi_ddsp.data.cache.cache_features`.
        split: "train", "valid", "test" or "all".
        clip_samples: clip length in samples (a multiple of the hop).
        hop_samples: distance between clip starts (default: clip_samples, i.e. no overlap).
        random_offset: shift every clip by a random multiple of the frame hop in [0, hop_samples)
            (training augmentation; the clip grid stays fixed otherwise, so valid/test are deterministic).
        min_active_fraction: drop clips where fewer frames than this are louder than ``active_db`` or
            inside a note (near-silent clips teach nothing).
        valid_fraction, test_fraction, salt: the split (see :func:`split_of`).
    """

    def __init__(self, cache_dir: str | Path, split: str = "train", clip_samples: int = 64000,
                 hop_samples: int | None = None, random_offset: bool = False, min_active_fraction: float = 0.25,
                 active_db: float = -60.0, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                 salt: str = "midi-ddsp"):
        entries = split_entries(cache_mod.load_manifest(cache_dir), split, valid_fraction, test_fraction, salt)
        self.store = _PieceStore(cache_dir, entries)
        self.split = split
        self.clip_samples = int(clip_samples)
        self.hop_samples = int(hop_samples or clip_samples)
        self.random_offset = bool(random_offset)
        clips = []
        hop = None
        for i, e in enumerate(entries):
            f = self.store.features(i)
            sr, fr = int(f["sample_rate"]), int(f["frame_rate"])
            h = sr // fr
            if hop is None:
                hop = h
            elif hop != h:
                raise ValueError("pieces with different frame hops in one cache")
            if self.clip_samples % h or self.hop_samples % h:
                raise ValueError(f"clip_samples and hop_samples must be multiples of the frame hop ({h})")
            n = int(f["n_samples"])
            if n < self.clip_samples:
                continue
            nf = self.clip_samples // h
            active = (f["loudness_db"] > active_db) | (f["frame_pitch"] > 0)
            for s in range(0, n - self.clip_samples + 1, self.hop_samples):
                a = s // h
                if active[a:a + nf].mean() >= min_active_fraction:
                    clips.append((i, s))
        self.frame_hop = hop or 64
        self.clips = np.asarray(clips, dtype=np.int64).reshape(-1, 2)

    @property
    def pieces(self) -> list[dict]:
        return self.store.entries

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    def __getitem__(self, idx: int) -> dict:
        import soundfile as sf

        i, s = (int(x) for x in self.clips[idx])
        f = self.store.features(i)
        h = self.frame_hop
        n = int(f["n_samples"])
        if self.random_offset and self.hop_samples > h:
            s = s + h * int(torch.randint(0, self.hop_samples // h, ()).item())
            s = min(s, (n - self.clip_samples) // h * h)
        nf = self.clip_samples // h
        a = s // h
        audio, _ = sf.read(str(self.store.audio_path(i)), start=s, stop=s + self.clip_samples, dtype="float32",
                           always_2d=True)
        audio = audio.mean(axis=1)
        if audio.shape[0] < self.clip_samples:
            audio = np.pad(audio, (0, self.clip_samples - audio.shape[0]))

        def win(key, dtype=np.float32):
            x = f[key][a:a + nf]
            if x.shape[0] < nf:
                x = np.pad(x, (0, nf - x.shape[0]), mode="edge")
            return x.astype(dtype)

        has_true = "true_f0_hz" in f
        f0 = win("f0_hz")
        pitch = win("frame_pitch", np.int64)
        ni = win("frame_note_index", np.int64)
        first = ni[ni >= 0].min() if (ni >= 0).any() else 0
        local = np.where(ni >= 0, ni - first, -1)
        nfeat = np.stack([pitch / 127.0, win("frame_onset"), win("frame_offset"), win("frame_position")], -1)
        # a note that started before the clip has no onset flag here; one running past it no offset flag
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            "f0_hz": torch.from_numpy(f0[:, None]),
            "f0_confidence": torch.from_numpy(win("f0_confidence")[:, None]),
            "true_f0_hz": torch.from_numpy((win("true_f0_hz") if has_true else f0)[:, None]),
            "has_true_f0": torch.tensor(has_true),
            "loudness_db": torch.from_numpy(win("loudness_db")[:, None]),
            "note_features": torch.from_numpy(nfeat.astype(np.float32)),
            "frame_pitch": torch.from_numpy(pitch),
            "note_index": torch.from_numpy(local),
            "instrument_id": torch.tensor(int(f["instrument_id"]), dtype=torch.long),
            "piece_index": torch.tensor(i, dtype=torch.long),
            "start_sample": torch.tensor(s, dtype=torch.long),
        }


class NoteSequenceDataset(Dataset):
    """Whole pieces as note sequences (performance level).

    Item: dict with ``id`` (str), ``instrument`` (str), ``instrument_id`` (int), ``pitch`` int64 [N],
    ``onset_s`` / ``offset_s`` float64 [N] (seconds), ``velocity`` int64 [N], ``sequence``
    (:class:`midi_ddsp.note_level.notes.NoteSequence`) and ``features_path`` (the piece's cached frame
    features, for expression extraction). Items vary in length: use :func:`collate_pieces`.
    """

    def __init__(self, cache_dir: str | Path, split: str = "train", valid_fraction: float = 0.1,
                 test_fraction: float = 0.1, salt: str = "midi-ddsp", min_notes: int = 2):
        entries = split_entries(cache_mod.load_manifest(cache_dir), split, valid_fraction, test_fraction, salt)
        self.store = _PieceStore(cache_dir, [e for e in entries if e.get("n_notes", min_notes) >= min_notes])
        self.split = split

    @property
    def pieces(self) -> list[dict]:
        return self.store.entries

    def __len__(self) -> int:
        return len(self.store.entries)

    def __getitem__(self, idx: int) -> dict:
        from midi_ddsp.note_level.notes import Note, NoteSequence

        e = self.store.entries[idx]
        f = self.store.features(idx)
        inst = e["instrument"]
        seq = NoteSequence([Note(int(p), float(a), float(b), int(v), inst) for p, a, b, v in
                            zip(f["note_pitch"], f["note_onset_s"], f["note_offset_s"], f["note_velocity"])],
                           instrument=inst, name=e["id"])
        return {"id": e["id"], "instrument": inst, "instrument_id": int(f["instrument_id"]),
                "pitch": f["note_pitch"], "onset_s": f["note_onset_s"], "offset_s": f["note_offset_s"],
                "velocity": f["note_velocity"], "sequence": seq,
                "features_path": str(Path(self.store.cache_dir) / e["features"])}


def collate_pieces(items: list[dict]) -> list[dict]:
    """Keep whole pieces as a list (they differ in length)."""
    return list(items)


def split_map(cache_dir: str | Path, valid_fraction: float = 0.1, test_fraction: float = 0.1,
              salt: str = "midi-ddsp") -> dict[str, str]:
    """{piece id: "train" | "valid" | "test"} for every ok piece of a cache (same rule as the datasets)."""
    return {e["id"]: split_of(e.get("group") or e["id"], valid_fraction, test_fraction, salt)
            for e in cache_mod.load_manifest(cache_dir)}


def write_split_json(cache_dir: str | Path, path: str | Path, **kwargs) -> Path:
    """Write :func:`split_map` as JSON (the ``split.json`` that the performance-level data contract uses)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split_map(cache_dir, **kwargs), indent=1, sort_keys=True))
    return path
