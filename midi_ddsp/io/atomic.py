"""All-or-nothing file writes: write a temporary file next to the target, rename it over the target only
on success, so a crash or an error never leaves a half-written output."""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import OutputWriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_TAG = "midi-ddsp"  # temporary files are named ``.<name>.midi-ddsp-<pid>-<random>.tmp``
_STARTED = time.time()  # (about) when this process started
_cleaned: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale(folder: str | Path) -> list[Path]:
    """Remove the temporary files that an interrupted (killed) write left in ``folder``: ours by name, made
    before this process started by a process that no longer runs. Returns what was removed."""
    removed = []
    for f in Path(folder).glob(f".*.{TEMP_TAG}-*.tmp"):
        try:
            pid = int(f.name.rsplit(f".{TEMP_TAG}-", 1)[1].split("-", 1)[0])
            if pid != os.getpid() and not _alive(pid) and f.stat().st_mtime < _STARTED:
                f.unlink()
                removed.append(f)
        except (ValueError, IndexError, OSError):
            continue
    return removed


def make_temp(path: str | Path) -> str:
    """Create an empty temporary file in ``path``'s folder, with the permissions a new file normally gets
    (and, the first time for a folder, remove what killed writes left there: :func:`clean_stale`)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    key = os.path.abspath(folder)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale(folder)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.{TEMP_TAG}-{os.getpid()}-", suffix=".tmp")
    except OSError as e:
        raise OutputWriteError(f"{path}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
    return tmp


def commit(tmp: str, path: str | Path) -> None:
    """Rename a temporary file from :func:`make_temp` over ``path``."""
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise OutputWriteError(f"{path}: cannot write ({e.strerror or e})") from None


def discard(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[str]:
    """``with atomic_write(p) as tmp: write(tmp)`` writes ``p`` all-or-nothing.

    An ``OSError`` while writing becomes a one-line :class:`OutputWriteError`.
    """
    tmp = make_temp(path)
    try:
        yield tmp
        commit(tmp, path)
    except OSError as e:
        raise OutputWriteError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        discard(tmp)
