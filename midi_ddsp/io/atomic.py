"""All-or-nothing file writes: write a temporary file next to the target, rename it over the target only
on success, so a crash or an error never leaves a half-written output."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import OutputWriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp(path: str | Path) -> str:
    """Create an empty temporary file in ``path``'s folder, with the permissions a new file normally gets."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.",
                                   suffix=".tmp")
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
