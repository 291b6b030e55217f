"""Safe files: atomic writes, and the lock that keeps two writers out of one run directory.

An atomic write goes to a temporary file in the same folder, then ``os.replace``: an interruption
(Ctrl-C, kill -9, a full disk) leaves either the old file or the new one, never a torn one.
Temporary files left by a killed write are named ``.NAME.*.tmp`` and are removed by the next write
of ``NAME``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UserInputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the lock is then a no-op
    fcntl = None


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, sync it, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a read-only file system, a file-size limit: name the real file
        Path(tmp).unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(path)) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def is_locked(folder: Path, name: str) -> bool:
    """Whether a :class:`DirectoryLock` on ``folder/name`` is held now (by any process)."""
    path = Path(folder) / name
    if fcntl is None or not path.is_file():
        return False
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


class DirectoryLock:
    """An exclusive advisory lock on ``folder/name``, held while one process writes a run.

    The operating system drops it when the process ends, however it ends (kill -9 included), so a
    stale lock file never blocks anyone; ``what`` names the work in the error a second writer gets.
    """

    def __init__(self, folder: Path, name: str, what: str):
        self.path, self.what, self._fh = Path(folder) / name, what, None

    def __enter__(self) -> DirectoryLock:
        if fcntl is None:
            return self
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise UserInputError(f"{self.path.parent} is in use by {owner} ({self.what}); wait for it to end "
                                 "or pick another directory") from None
        fh.truncate(0)
        fh.write(f"process {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None
