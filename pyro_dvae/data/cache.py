"""Decode-once cache for folders of videos or images.

Layout: ``<data folder>/.pyro-dvae-cache/<settings>/``; when the data folder is not writable,
``$XDG_CACHE_HOME/pyro-dvae/<folder name>-<hash of its path>/<settings>/`` (``~/.cache`` by
default), and with the option ``cache_dir=DIR`` always ``DIR/<folder name>-<hash>/<settings>/``;
where ``<settings>`` is e.g. ``64px-3ch-center``. It holds one uint8 ``.npy`` per source
(a video file or an image sub-folder) of shape (T, S, S, C), memory-mapped when read, and
``manifest.json`` recording each source's signature (file names, sizes and mtimes) and what its
array must be (shape, dtype, the file's size and a hash of its header and first frames). A source
whose signature changed, or a new one, is decoded again; an array that no longer is what the
manifest says (truncated, a byte of its header changed, replaced) is never read as frames but
decoded again with a message; the others are reused; entries of sources that disappeared are
removed. Processes that open the same folder at once take turns (a lock file), so they end with
one good cache. Deleting the cache folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataWarning

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent builds then race as before
    fcntl = None

CACHE_DIRNAME = ".pyro-dvae-cache"
FORMAT_VERSION = 2  # 2: entries record what their array must be
#: Bytes of an array file hashed to check it (its header and first frames): cheap on any size.
CHECKED_BYTES = 1 << 20

Signature = list[list[Any]]


def file_signature(paths: list[Path], root: Path) -> Signature:
    """[relative path, size, mtime_ns] of each file: any edit, addition or removal changes it."""
    signature = []
    for path in paths:
        stat = path.stat()
        signature.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return signature


def cache_root(data_root: Path, cache_dir: str | Path | None = None) -> Path:
    """Where the cache of a data folder lives (see the module docstring).

    ``cache_dir`` (if given) replaces the user cache dir and is always used; each data folder
    gets its own sub-folder there.
    """
    if cache_dir is None:
        inside = data_root / CACHE_DIRNAME
        try:
            inside.mkdir(exist_ok=True)
            if os.access(inside, os.W_OK):
                return inside
        except OSError:
            pass
    base = Path(cache_dir) if cache_dir is not None else _user_cache_dir()
    digest = hashlib.sha1(str(data_root.resolve()).encode()).hexdigest()[:12]
    return base / f"{data_root.resolve().name}-{digest}"


def _user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyro-dvae"


class FrameCache:
    """Decoded frames of one data folder for one setting (size, channels, crop).

    Parameters
    ----------
    folder : where the manifest and the per-source arrays live (created on demand).
    settings : decoding settings; stored in the manifest, a different value starts afresh.
    """

    def __init__(self, folder: Path, settings: dict[str, Any]):
        self.folder = folder
        self.settings = settings
        self._manifest_path = folder / "manifest.json"
        self.entries: dict[str, dict[str, Any]] = self._read_manifest()

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        """The manifest's entries; a missing, unreadable or malformed manifest counts as empty."""
        try:
            manifest = json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            return {}
        if (not isinstance(manifest, dict) or manifest.get("version") != FORMAT_VERSION
                or manifest.get("settings") != self.settings or not isinstance(manifest.get("entries"), dict)):
            return {}
        entries = manifest["entries"]
        well_formed = all(isinstance(e, dict) and isinstance(e.get("signature"), list)
                          and isinstance(e.get("file"), str | None) and isinstance(e.get("problems"), list)
                          and (e.get("file") is None or isinstance(e.get("check"), dict))
                          for e in entries.values())
        return entries if well_formed else {}

    def lock(self) -> _BuildLock:
        """Held while this process checks and builds the cache: another one opening the same
        folder waits, then reuses what this one decoded (:meth:`reload`)."""
        return _BuildLock(self.folder)

    def reload(self) -> None:
        """Read the manifest again (after waiting for another process's build)."""
        self.entries = self._read_manifest()

    def get(self, key: str, signature: Signature) -> tuple[np.ndarray | None, list[str]] | None:
        """(frames memory-mapped or None, problems) of ``key``; None when it must be decoded.

        An entry is stale when its signature differs or its array is missing or unreadable.
        """
        entry = self.entries.get(key)
        if entry is None or entry["signature"] != signature:
            return None
        if entry["file"] is None:
            return None, entry["problems"]
        try:
            frames = self._open(entry["file"])
        except (OSError, ValueError):
            frames = None
        if frames is None or _check(self.folder / entry["file"], frames) != entry["check"]:
            warnings.warn(DataWarning(f"the decode cache of {key} in {self.folder} is damaged (truncated or changed "
                                      "since it was written); decoding it again"), stacklevel=2)
            return None
        return frames, entry["problems"]

    def put(self, key: str, signature: Signature, frames: np.ndarray | None, problems: list[str]) -> np.ndarray | None:
        """Record a decoded source (``frames`` None when nothing usable came out of it).

        Returns the stored frames, memory-mapped.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        name = None
        if frames is not None:
            name = hashlib.sha1(key.encode()).hexdigest()[:16] + ".npy"
            # Write then rename, so an interrupted run never leaves a truncated array behind.
            partial = self.folder / (name + ".partial.npy")
            np.save(partial, frames, allow_pickle=False)
            os.replace(partial, self.folder / name)
        stored = None if name is None else self._open(name)
        check = None if stored is None else _check(self.folder / name, stored)
        self.entries[key] = {"signature": signature, "file": name, "problems": problems, "check": check}
        return stored

    def _open(self, name: str) -> np.ndarray:
        return np.load(self.folder / name, mmap_mode="r", allow_pickle=False)

    def keep_only(self, keys: set[str]) -> bool:
        """Forget entries of sources that no longer exist and delete their arrays.

        Returns whether any entry was removed.
        """
        gone = set(self.entries) - keys
        for key in gone:
            entry = self.entries.pop(key)
            if entry["file"] is not None:
                (self.folder / entry["file"]).unlink(missing_ok=True)
        return bool(gone)

    def save(self) -> None:
        """Write the manifest (atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = {"version": FORMAT_VERSION, "settings": self.settings, "entries": self.entries}
        partial = self._manifest_path.with_suffix(".partial")
        partial.write_text(json.dumps(manifest, indent=1))
        os.replace(partial, self._manifest_path)


def _check(path: Path, frames: np.ndarray) -> dict[str, Any]:
    """What an array file must be: its shape and dtype as read, its size, and a hash of its first
    ``CHECKED_BYTES`` (the header and the first frames)."""
    with open(path, "rb") as fh:
        head = hashlib.sha1(fh.read(CHECKED_BYTES)).hexdigest()
    return {"shape": list(frames.shape), "dtype": str(frames.dtype), "bytes": path.stat().st_size, "head": head}


class _BuildLock:
    """An exclusive lock on ``folder/.lock`` that waits for its holder (another process building
    the same cache); the operating system drops it when the holder ends, however it ends."""

    def __init__(self, folder: Path):
        self.folder, self._fh = folder, None

    def __enter__(self) -> _BuildLock:
        if fcntl is None:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.folder / ".lock", "a+")
        except OSError:
            return self  # a read-only cache: nothing will be written, so nothing to take turns on
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
