"""The user's own data, given as a path: folders of videos or images, and array files.

What a path is read as:

* an ``.npy`` / ``.npz`` file: an array of frame sets (:mod:`.arrays`; ``mnist_test_seq.npy`` is
  the public Moving MNIST file);
* a folder holding video files (mp4, avi, mov, webm, mkv, m4v, gif): one set per video (a single
  video file is one set); files of other types and sub-folders are skipped;
* otherwise a folder of sub-folders of images (png, jpg, jpeg, bmp, gif, webp, tif): one set per
  sub-folder, the images in name order; files beside the sub-folders are skipped.

Hidden files and folders (names starting with '.') are ignored, the cache among them.

Videos and images are decoded once into the cache (:mod:`.cache`) at ``image_size`` (64 if not
given) and ``channels`` (default: 3 for videos, that of the first image for image folders), with a
tqdm progress bar. Files that cannot be used (unsupported type, unreadable, corrupt, empty) are
listed in one :class:`DataWarning` and skipped; when nothing usable remains a
:class:`~pyro_dvae.errors.UserInputError` says why. Splits are those of :func:`.arrays.split_indices`,
over the sets in name order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DataWarning, UserInputError
from ._options import open_with_options
from .arrays import ArraySets, check_test_fraction, open_array_file, split_indices
from .base import FrameSets
from .cache import FrameCache, cache_root, file_signature
from .decode import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameDecoder, describe_error, image_channels

DEFAULT_SIZE = 64
# Lines of a skip warning before it is summarised, so a huge broken folder stays readable.
MAX_LISTED = 20
_EXPECTED = "expected a folder of videos, a folder of image sub-folders, or an .npy/.npz array file"


@dataclass
class FolderScan:
    """The usable sources of a data folder and the entries skipped while listing it."""

    root: Path
    kind: str  # "videos" or "images"
    sources: dict[str, list[Path]] = field(default_factory=dict)  # set name -> its files
    skipped: list[str] = field(default_factory=list)  # "name: reason"
    whole_folder: bool = True  # False for a single video: the cache then keeps other entries


def open_path(
    path: Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> FrameSets:
    """Frame sets from a user path (see the module docstring); ``options`` depend on its kind.
    ``progress``: show a bar while videos or images are decoded into the cache."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path} does not exist; {_EXPECTED}")
    if path.is_file() and path.suffix.lower() in (".npy", ".npz"):
        return open_with_options(open_array_file, str(path), path, split, image_size, device, **options)
    return open_with_options(open_media, str(path), path, split, image_size, device, progress=progress, **options)


def open_media(
    path: Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    *,
    crop: str = "center",
    channels: int | None = None,
    test_fraction: float = 0.1,
    cache_dir: str | Path | None = None,
    min_frames: int = 1,
    progress: bool = True,
) -> ArraySets:
    """Frame sets from a folder of videos, a single video, or a folder of image sub-folders.

    Parameters
    ----------
    path : the folder (or video file).
    split : ``train`` or ``test`` (see :func:`.arrays.split_indices`).
    image_size : side of the cached frames (default 64).
    device : where frames are served.
    crop : ``center`` or ``faces`` (OpenCV Haar face detector; ``pip install 'pyro-dvae[video]'``).
    channels : 1 or 3; default 3 for videos, that of the first image for image folders.
    test_fraction : share of the sets held out for ``test``.
    cache_dir : put the cache there instead of inside the data folder (see :mod:`.cache`).
    min_frames : sets with fewer frames are skipped (and listed in the warning), e.g. the
        model's frames per set N, so that a few short videos do not stop training.
    progress : show a bar while decoding (``--quiet`` turns it off).
    """
    check_test_fraction(test_fraction)  # before decoding, which may take long
    scan = scan_path(path)
    size = image_size or DEFAULT_SIZE
    if channels is None:
        channels = 3 if scan.kind == "videos" else first_image_channels(scan)
    decoder = FrameDecoder(size, channels, crop)
    settings = {"size": size, "channels": channels, "crop": crop}
    cache = FrameCache(cache_root(scan.root, cache_dir) / f"{size}px-{channels}ch-{crop}", settings)
    frames, problems = load_sources(scan, decoder, cache, progress)
    for name in [name for name, array in frames.items() if len(array) < min_frames]:
        problems.append(f"{name}: {len(frames.pop(name))} frames, fewer than min_frames={min_frames}")
    skipped = scan.skipped + problems
    if skipped:
        warn_skipped(path, skipped)
    names = [name for name in scan.sources if name in frames]
    if not names:
        raise UserInputError(
            f"no usable {scan.kind} in {path}: all {len(skipped)} entries were skipped "
            "(listed in the warning above); add readable files"
        )
    chosen = split_indices(len(names), split, test_fraction)
    return ArraySets(
        [frames[names[i]] for i in chosen],
        name=path.name,
        set_names=[names[i] for i in chosen],
        image_size=image_size,
        device=device,
    )


def scan_path(path: Path) -> FolderScan:
    """Classify a path and list its sources; a folder with nothing usable is a user error."""
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserInputError(f"{path} is not a video or array file; {_EXPECTED}")
        return FolderScan(path.parent, "videos", {path.name: [path]}, whole_folder=False)
    entries = visible_entries(path)
    videos = [e for e in entries if e.is_file() and e.suffix.lower() in VIDEO_SUFFIXES]
    folders = [e for e in entries if e.is_dir()]
    if videos:
        scan = FolderScan(path, "videos", {v.name: [v] for v in videos})
        scan.skipped = [
            f"{e.name}: {'folder (a video folder is read one level deep)' if e.is_dir() else 'unsupported file type'}"
            for e in entries
            if e not in videos
        ]
        return scan
    if folders:
        return scan_image_tree(path, entries)
    if any(e.suffix.lower() in IMAGE_SUFFIXES for e in entries):
        raise UserInputError(f"{path} holds images but no sub-folders; put each set's images in its own sub-folder")
    found = f"{len(entries)} unsupported file(s)" if entries else "nothing"
    raise UserInputError(f"{path} holds {found}; {_EXPECTED}")


def scan_image_tree(root: Path, entries: list[Path]) -> FolderScan:
    """One source per sub-folder holding images; everything else is listed as skipped."""
    scan = FolderScan(root, "images")
    for entry in entries:
        if not entry.is_dir():
            scan.skipped.append(f"{entry.name}: file beside the image sub-folders (not read)")
            continue
        inner = visible_entries(entry)
        images = [f for f in inner if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        scan.skipped += [
            f"{f.relative_to(root).as_posix()}: {'nested folder (not read)' if f.is_dir() else 'unsupported file type'}"
            for f in inner
            if f not in images
        ]
        if images:
            scan.sources[entry.name] = images
        else:
            scan.skipped.append(f"{entry.name}/: no images")
    return scan


def visible_entries(folder: Path) -> list[Path]:
    """Entries of a folder in name order, without hidden ones (the cache is hidden)."""
    try:
        return sorted(e for e in folder.iterdir() if not e.name.startswith("."))
    except OSError as err:
        raise UserInputError(f"cannot list {folder} ({describe_error(err)}); check it") from None


def first_image_channels(scan: FolderScan) -> int:
    """Channel count of the first readable image of the tree (3 if none is readable)."""
    for files in scan.sources.values():
        for file in files:
            try:
                return image_channels(file)
            except Exception:  # a corrupt image is reported when decoding; try the next one
                continue
    return 3


def load_sources(scan: FolderScan, decoder: FrameDecoder, cache: FrameCache,
                 progress: bool = True) -> tuple[dict[str, np.ndarray], list[str]]:
    """Frames of every usable source (from the cache, decoding what is new or changed).

    Returns the frames by source name (memory-mapped) and the problems met, one line each.
    """
    with cache.lock():  # another process building the same cache: wait, then reuse its work
        cache.reload()
        return _load_sources(scan, decoder, cache, progress)


def _load_sources(scan: FolderScan, decoder: FrameDecoder, cache: FrameCache,
                  progress: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    frames: dict[str, np.ndarray] = {}
    problems: list[str] = []
    stale: list[tuple[str, list]] = []
    for name, files in scan.sources.items():
        try:
            signature = file_signature(files, scan.root)
        except OSError as err:  # vanished or unreadable between listing and now
            problems.append(f"{name}: {describe_error(err)}")
            continue
        cached = cache.get(name, signature)
        if cached is None:
            stale.append((name, signature))
            continue
        array, found = cached
        _collect(name, array, found, frames, problems)
    unit = "video" if scan.kind == "videos" else "folder"
    bar = tqdm(stale, desc=f"decoding {scan.root.name}", unit=unit, disable=not (stale and progress))
    try:
        for name, signature in bar:
            array, found = decode_source(scan, name, decoder)
            _collect(name, cache.put(name, signature, array, found), found, frames, problems)
        pruned = scan.whole_folder and cache.keep_only(set(scan.sources))
        if stale or pruned:
            cache.save()
    except OSError as err:
        raise UserInputError(
            f"cannot write the decode cache in {cache.folder} ({describe_error(err)}); "
            "free some space or pass the option cache_dir=A_WRITABLE_FOLDER"
        ) from None
    except KeyboardInterrupt:
        cache.save()  # what was decoded so far is kept for the next run
        raise
    return frames, problems


def _collect(
    name: str,
    array: np.ndarray | None,
    found: list[str],
    frames: dict[str, np.ndarray],
    problems: list[str],
) -> None:
    problems.extend(found)
    if array is not None:
        frames[name] = array


def decode_source(scan: FolderScan, name: str, decoder: FrameDecoder) -> tuple[np.ndarray | None, list[str]]:
    """Decode one video or image sub-folder: (frames or None, problems)."""
    if scan.kind == "videos":
        try:
            array = decoder.video(scan.sources[name][0])
        except UserInputError:
            raise
        except Exception as err:  # decoders raise many types for corrupt or foreign files
            return None, [f"{name}: {describe_error(err)}"]
        return (array, []) if len(array) else (None, [f"{name}: no frames"])
    images, problems = [], []
    for file in scan.sources[name]:
        try:
            images.append(decoder.image(file))
        except UserInputError:
            raise
        except Exception as err:
            problems.append(f"{file.relative_to(scan.root).as_posix()}: {describe_error(err)}")
    if not images:
        return None, problems + [f"{name}/: no readable images"]
    return np.stack(images), problems


def warn_skipped(path: Path, skipped: list[str]) -> None:
    """One warning listing what was skipped, one line per entry."""
    lines = skipped[:MAX_LISTED]
    if len(skipped) > MAX_LISTED:
        lines.append(f"... and {len(skipped) - MAX_LISTED} more")
    warnings.warn(
        DataWarning(f"skipped {len(skipped)} unusable file(s) or folder(s) in {path}:\n  " + "\n  ".join(lines)),
        stacklevel=2,
    )
