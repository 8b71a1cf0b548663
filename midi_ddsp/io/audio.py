"""Audio files: read as mono float32 at a requested sample rate; write atomically (temp file + rename)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import MidiDDSPError, OutputWriteError
from .atomic import atomic_write


class AudioReadError(MidiDDSPError, ValueError):
    """An audio file is missing, unreadable or empty."""


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32 in [-1, 1], resampled to ``sample_rate`` Hz when given.

    Returns:
        (audio [samples], sample_rate in Hz).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(f"{path}: audio file not found")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioReadError(f"{path}: not a readable audio file ({str(e).splitlines()[0]})") from None
    if audio.shape[0] == 0:
        raise AudioReadError(f"{path}: audio file is empty")
    audio = audio.mean(axis=1)
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio.astype(np.float32), int(sr)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of [..., samples] with libsoxr (its high-quality setting), from_rate -> to_rate Hz."""
    if from_rate == to_rate:
        return audio
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-1]).T  # soxr takes [samples, channels]
    out = soxr.resample(np.ascontiguousarray(flat), int(from_rate), int(to_rate), quality="HQ")
    return np.ascontiguousarray(out.T).reshape(*x.shape[:-1], -1)


def resample_limited(audio: np.ndarray, from_rate: int, to_rate: int | None, peak: float = 1.0) -> np.ndarray:
    """:func:`resample` to ``to_rate`` (None: unchanged), scaled down if resampling overshot ``peak``
    (band-limiting a peak-limited signal can raise its peak slightly)."""
    if to_rate is None or int(to_rate) == int(from_rate):
        return audio
    out = resample(audio, int(from_rate), int(to_rate))
    top = float(np.max(np.abs(out))) if out.size else 0.0
    return out * (peak / top) if top > peak else out


FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def encode_audio(target: str | Path, audio: np.ndarray, sample_rate: int, suffix: str,
                 name: str | Path | None = None) -> None:
    """Write mono ``audio`` [samples] to ``target`` in the format of ``suffix`` (.wav/.flac/.ogg), non-atomically.

    The file is encoded in memory and then written, so a full disk or another write error is reported as
    what it is (libsndfile says only "System error"); ``name`` is the path errors name (default ``target``).
    """
    fmt, subtype = FORMATS[suffix.lower()]
    name = target if name is None else name
    buf = io.BytesIO()
    try:
        sf.write(buf, np.asarray(audio, dtype=np.float32), int(sample_rate), format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise OutputWriteError(f"{name}: cannot encode audio ({str(e).splitlines()[0]})") from None
    try:
        with open(target, "wb") as f:
            f.write(buf.getbuffer())
    except OSError as e:
        raise OutputWriteError(write_error(name, e)) from None


def write_error(path: str | Path, e: OSError) -> str:
    """One line for a failed write of ``path``; a full disk says so, with the space left in its folder."""
    import errno
    import shutil

    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        folder = Path(path).parent if str(Path(path).parent) else Path(".")
        try:
            free = f", {shutil.disk_usage(folder).free / 1e6:.1f} MB free in {folder}"
        except OSError:
            free = ""
        return f"{path}: cannot write: no space left on device{free} (free some space or write elsewhere)"
    return f"{path}: cannot write ({e.strerror or e})"


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono ``audio`` [samples] to ``path`` (.wav, .flac or .ogg) atomically.

    Raises:
        OutputWriteError: unknown format, or the folder does not exist or cannot be written; nothing is left
            behind.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OutputWriteError(f"{path}: audio outputs end in {', '.join(FORMATS)}")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise OutputWriteError(f"{path}: output folder {path.parent} does not exist")
    with atomic_write(path) as tmp:
        encode_audio(tmp, audio, sample_rate, path.suffix)
    return path
