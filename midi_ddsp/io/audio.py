"""Audio files: read as mono float32 at a requested sample rate; write atomically (temp file + rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import MidiDDSPError, OutputWriteError


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
    """Band-limited resampling of [..., samples] (librosa's soxr backend)."""
    if from_rate == to_rate:
        return audio
    import librosa

    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=from_rate, target_sr=to_rate,
                            res_type="soxr_hq")


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write mono ``audio`` [samples] to ``path`` (format from the extension) atomically.

    Raises:
        OutputWriteError: the folder does not exist or cannot be written; nothing is left behind.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputWriteError(f"{path}: output folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.stem}.", suffix=path.suffix or ".wav")
    except OSError as e:
        raise OutputWriteError(f"{path}: cannot write here ({e.strerror})") from None
    os.close(fd)
    try:
        sf.write(tmp, np.asarray(audio, dtype=np.float32), int(sample_rate),
                 subtype=subtype if path.suffix.lower() in (".wav", "") else None,
                 format="WAV" if path.suffix == "" else None)
        os.replace(tmp, path)
    except (OSError, sf.LibsndfileError, ValueError, TypeError) as e:
        raise OutputWriteError(f"{path}: cannot write audio ({str(e).splitlines()[0]})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
