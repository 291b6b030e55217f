"""Sprites export to .npy files and the labelled preview grid."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...errors import UserInputError
from .catalogue import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    EVAL_CELLS,
    EVAL_CLASSES,
    FRAME_SIZE,
    SEQUENCE_LENGTH,
    decode_identity,
    split_identities,
)
from .compositor import SpriteCompositor
from .views import SpritesSequences, sprites_eval_sequences

# --------------------------------------------------------------------------------------------
# Export and preview (back the `pyro-dvae data export/preview sprites` commands)
# --------------------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"output path {out_dir} is an existing file; give a directory (created if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(
            f"cannot create output directory {out_dir} ({err.strerror}); choose a writable path"
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise UserInputError(f"output directory {out_dir} is not writable; choose another path")


def _temp_path(final: Path) -> Path:
    """A fresh hidden name beside ``final`` (same file system, so the final rename is atomic)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _write_frames(path: Path, seqs: SpritesSequences, batch_size: int, progress) -> None:
    """Stream (n, 8, 64, 64, 3) uint8 frames to an .npy file batch by batch (bounded memory)."""
    shape = (len(seqs), SEQUENCE_LENGTH, FRAME_SIZE, FRAME_SIZE, 3)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for rows, x in seqs.batches(batch_size, dtype=torch.uint8):
            f.write(x.permute(0, 1, 3, 4, 2).contiguous().cpu().numpy().tobytes())
            progress.update(rows.stop - rows.start)


def export_sprites(
    out_dir: str | Path,
    splits: Sequence[str] = ("train", "test"),
    limit_identities: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    progress: bool = True,
) -> list[Path]:
    """Write the evaluation sequences of each split as .npy files (the protocol's file layout).

    Per split ``S``: ``sprites_S_X.npy`` uint8 (n, 8, 64, 64, 3), ``sprites_S_A.npy`` int64 (n, 4)
    attributes (skin, pants, top, hair), ``sprites_S_D.npy`` int64 (n,) action class
    (:data:`EVAL_CLASSES` order), ``sprites_S_id.npy`` int64 (n,) identity ``k``; rows as
    :func:`sprites_eval_sequences`. Every file is written to a temporary name in ``out_dir`` and
    only renamed once all files are complete, so an error leaves no partial output.

    Parameters
    ----------
    out_dir : path
        Directory to write into (created if missing).
    splits : sequence of {"train", "test"}
    limit_identities : int, optional
        Export only the first K identities of each split.
    device : str or torch.device
        Where frames are rendered.
    batch_size : int
        Sequences rendered per step.
    progress : bool
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    UserInputError
        If ``out_dir`` is an existing file or cannot be created or written.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    # The sequences first: an option out of range is refused before anything is created.
    all_seqs = {s: sprites_eval_sequences(s, device, limit_identities) for s in splits}
    created = not out_dir.exists()
    _prepare_out_dir(out_dir)
    total = sum(len(s) for s in all_seqs.values())
    pending: list[tuple[Path, Path]] = []  # (temporary, final)
    try:
        with tqdm(total=total, unit="seq", desc="sprites export", disable=not progress) as bar:
            for split, seqs in all_seqs.items():
                for suffix in ("X", "A", "D", "id"):
                    final = out_dir / f"sprites_{split}_{suffix}.npy"
                    pending.append((_temp_path(final), final))
                x_tmp, a_tmp, d_tmp, id_tmp = (tmp for tmp, _ in pending[-4:])
                _write_frames(x_tmp, seqs, batch_size, bar)
                _write_npy(a_tmp, seqs.attrs.cpu().numpy())
                _write_npy(d_tmp, seqs.action.cpu().numpy())
                _write_npy(id_tmp, seqs.identity.cpu().numpy())
        for tmp, final in pending:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # nothing half-written: not even the empty folder
        raise
    return [final for _, final in pending]


def preview_sprites(
    out_file: str | Path,
    split: str = "train",
    n_identities: int = 4,
    frame: int = 3,
    seed: int = 0,
) -> Path:
    """Draw a labelled grid: rows are random identities, columns the 9 evaluation classes.

    Parameters
    ----------
    out_file : path
        Image to write (format from the suffix, e.g. ``.png``); parent directories are created.
    split : {"train", "test"}
        Split the identities are drawn from.
    n_identities : int
        Number of rows.
    frame : int
        Which of the 8 frames of each sequence to show.
    seed : int
        Seed for choosing the identities.

    Returns
    -------
    Path
        ``out_file``.

    Raises
    ------
    UserInputError
        For a bad path or format, or arguments out of range.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_file = Path(out_file)
    if out_file.is_dir():
        raise UserInputError(f"output path {out_file} is a directory; give a file name like x.png")
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    fmt = out_file.suffix.lstrip(".").lower()
    if fmt not in formats:
        raise UserInputError(
            f"cannot tell the image format of {out_file}; end it with one of"
            f" {', '.join('.' + f for f in sorted(formats))}"
        )
    ids = split_identities(split)
    if not 1 <= n_identities <= len(ids):
        raise UserInputError(f"n_identities={n_identities} out of range; use 1..{len(ids)}")
    if not 0 <= frame < SEQUENCE_LENGTH:
        raise UserInputError(f"frame={frame} out of range; use 0..{SEQUENCE_LENGTH - 1}")

    chosen = np.random.default_rng(seed).choice(ids, size=n_identities, replace=False)
    cells = torch.tensor(EVAL_CELLS)[:, frame]
    images = SpriteCompositor("cpu").render(torch.from_numpy(chosen)[:, None], cells)
    images = images.permute(0, 1, 3, 4, 2).numpy()  # (n_identities, 9, 64, 64, 3)

    n_cols = len(EVAL_CLASSES)
    fig = Figure(figsize=(1.1 * n_cols + 2.2, 1.25 * n_identities + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_identities, n_cols, squeeze=False)
    for i, k in enumerate(chosen):
        attrs = decode_identity(int(k)).tolist()
        row_label = f"k={k}\n" + "\n".join(ATTRIBUTE_VALUES[name][v] for name, v in zip(ATTRIBUTES, attrs, strict=True))
        for c in range(n_cols):
            ax = axes[i, c]
            ax.imshow(images[i, c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(EVAL_CLASSES[c].replace("-", "\n"), fontsize=8)
            if c == 0:
                ax.set_ylabel(row_label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"LPC Sprites ({split} split, frame {frame} of each sequence)", fontsize=9)

    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(out_file)
    except OSError as err:
        raise UserInputError(f"cannot write {out_file} ({err.strerror}); choose a writable path") from None
    try:
        fig.savefig(tmp, format=fmt, dpi=150)
        os.replace(tmp, out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_file
