"""Sprites: compositor against PIL, standard split and labels, sampler, device, export/preview CLI."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pyro_dvae.cli import main
from pyro_dvae.data import load_frame_sets
from pyro_dvae.data.sprites import (
    EVAL_CELLS,
    EVAL_CLASSES,
    EVAL_COLUMNS,
    N_CELLS,
    PROTOCOL_CELLS,
    SPRITE_CELLS,
    SpriteCompositor,
    Sprites,
    cell_index,
    decode_identity,
    encode_identity,
    split_identities,
    sprites_eval_sequences,
)
from pyro_dvae.errors import UserInputError

LAYERS = ("body", "bottomwear", "topwear", "hair")


@pytest.fixture(scope="module")
def sheets() -> dict[tuple[str, int], Image.Image]:
    """The raw shipped sheets as RGBA PIL images, keyed by (folder, variant)."""
    root = resources.files("pyro_dvae.data").joinpath("assets", "lpc")
    out = {}
    for folder, variants in [(d, range(6)) for d in LAYERS] + [("shoes", [1])]:
        for v in variants:
            with root.joinpath(folder, f"{v}.png").open("rb") as f, Image.open(f) as im:
                out[folder, v] = im.convert("RGBA")
    return out


@pytest.fixture(scope="module")
def compositor() -> SpriteCompositor:
    return SpriteCompositor("cpu")


def pil_frame(sheets, k: int, row: int, col: int) -> np.ndarray:
    """Straightforward reference: crop each layer's cell, alpha-composite over opaque black."""
    box = (col * 64, row * 64, col * 64 + 64, row * 64 + 64)
    skin, pants, top, hair = (k // 216, (k // 36) % 6, (k // 6) % 6, k % 6)
    frame = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    for key in [("body", skin), ("bottomwear", pants), ("topwear", top), ("hair", hair), ("shoes", 1)]:
        frame = Image.alpha_composite(frame, sheets[key].crop(box))
    return np.asarray(frame.convert("RGB"))


def as_hwc_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


# --- compositor ---------------------------------------------------------------------------------


def test_frames_match_pil_on_all_cells_of_varied_identities(sheets, compositor):
    # Together these cover every variant of every layer, including the layers with partial alpha
    # (skin 0 and 3, pants 4, tops 0-4), on every pose.
    identities = [encode_identity([v, (v + 4) % 6, v, (v + 2) % 6]) for v in range(6)]
    x = compositor.render(torch.tensor(identities)[:, None], torch.arange(N_CELLS))
    assert x.shape == (6, N_CELLS, 3, 64, 64) and x.dtype == torch.float32
    for i, k in enumerate(identities):
        for j, cell in enumerate(SPRITE_CELLS):
            ref = pil_frame(sheets, int(k), cell.row, cell.column).astype(int)
            diff = np.abs(as_hwc_uint8(x[i, j]).astype(int) - ref).max()
            assert diff <= 1, (int(k), cell, diff)


def test_frames_match_pil_on_random_identities_and_cells(sheets, compositor):
    rng = np.random.default_rng(0)
    ks = rng.integers(0, 1296, size=60)
    cells = rng.integers(0, N_CELLS, size=60)
    x = compositor.render(torch.from_numpy(ks), torch.from_numpy(cells))
    for k, c, frame in zip(ks, cells, x, strict=True):
        ref = pil_frame(sheets, int(k), SPRITE_CELLS[c].row, SPRITE_CELLS[c].column).astype(int)
        assert np.abs(as_hwc_uint8(frame).astype(int) - ref).max() <= 1


def test_uint8_and_float_renderings_agree(compositor):
    k, c = torch.tensor([0, 517, 1295]), torch.tensor([0, 86, 177])
    u = compositor.render(k, c, dtype=torch.uint8)
    assert u.dtype == torch.uint8
    assert torch.equal(compositor.render(k, c), u.float() / 255)


def test_layer_memory_is_compact(compositor):
    assert compositor.nbytes < 150e6


# --- labels and split ---------------------------------------------------------------------------


def test_sheet_cells():
    assert len(SPRITE_CELLS) == 178
    counts = {}
    for c in SPRITE_CELLS:
        counts[c.action] = counts.get(c.action, 0) + 1
    assert counts == {"spellcast": 28, "thrust": 32, "walk": 36, "slash": 24, "shoot": 52, "hurt": 6}
    walk_front = SPRITE_CELLS[cell_index("walk", "front", 8)]
    assert (walk_front.row, walk_front.column) == (10, 8)  # rows back, left, front, right
    with pytest.raises(UserInputError):
        cell_index("walk", "front", 9)


def test_identity_decoding():
    k = torch.arange(1296)
    attrs = decode_identity(k)
    assert attrs.dtype == torch.int64 and attrs.shape == (1296, 4)
    assert attrs[517].tolist() == [2, 2, 2, 1]  # 517 = 2*216 + 2*36 + 2*6 + 1
    assert torch.equal(encode_identity(attrs), k)
    assert len({tuple(a) for a in attrs.tolist()}) == 1296


def test_standard_split():
    np.random.seed(423)
    perm = np.random.permutation(1296)
    train, test = split_identities("train"), split_identities("test")
    assert len(train) == 1000 and len(test) == 296
    assert np.array_equal(train, perm[:1000]) and np.array_equal(test, perm[1000:])
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(1296))
    with pytest.raises(UserInputError):
        split_identities("val")


def test_eval_sequences_sizes_and_labels():
    train, test = sprites_eval_sequences("train"), sprites_eval_sequences("test")
    assert len(train) == 9000 and len(test) == 2664
    for seqs, split in ((train, "train"), (test, "test")):
        ids = split_identities(split)
        assert seqs.identity.dtype == seqs.action.dtype == seqs.attrs.dtype == torch.int64
        assert np.array_equal(seqs.identity[::9].numpy(), ids)
        assert torch.equal(seqs.action, torch.arange(9).repeat(len(ids)))
        assert torch.equal(seqs.attrs, decode_identity(seqs.identity))
    assert EVAL_CLASSES[:4] == ("walk-front", "walk-left", "walk-right", "spellcast-front")


def test_eval_sequence_frames_follow_the_protocol_columns(compositor):
    seqs = sprites_eval_sequences("test", limit_identities=2)
    assert len(seqs) == 18
    x = seqs.frames()
    assert x.shape == (18, 8, 3, 64, 64) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    for row in (0, 4, 8, 9 + 7):  # walk-front, spellcast-left, slash-right, slash-left
        action, direction = EVAL_CLASSES[int(seqs.action[row])].split("-")
        cells = [cell_index(action, direction, col) for col in EVAL_COLUMNS[action]]
        assert seqs.cells[row].tolist() == cells == list(EVAL_CELLS[int(seqs.action[row])])
        assert torch.equal(x[row], compositor.render(seqs.identity[row], torch.tensor(cells)))
    batches = list(seqs.batches(batch_size=5, dtype=torch.uint8))
    assert [r.start for r, _ in batches] == [0, 5, 10, 15]
    assert torch.equal(torch.cat([b for _, b in batches]).float() / 255, x)


# --- training view ------------------------------------------------------------------------------


def test_registry_opens_sprites():
    ds = load_frame_sets("sprites", "test", image_size=32, limit_identities=5)
    assert isinstance(ds, Sprites) and len(ds) == 5 and ds.image_size == 32


def test_sprites_frame_sets():
    ds = Sprites("test", limit_identities=5)
    assert (ds.name, ds.channels, ds.native_size, len(ds)) == ("sprites", 3, 64, 5)
    assert torch.equal(ds.set_sizes, torch.full((5,), 178))
    assert np.array_equal(ds.identities.numpy(), split_identities("test")[:5])
    assert torch.equal(ds.labels(torch.arange(5)), decode_identity(ds.identities))
    assert len(Sprites("train")) == 1000 and len(Sprites("test")) == 296
    with pytest.raises(UserInputError):
        Sprites("train", limit_identities=1001)


def test_protocol_poses_are_exactly_the_frames_of_the_evaluation_sequences():
    """poses="protocol": every set holds each pose of the 9 evaluation classes once, nothing else."""
    assert len(PROTOCOL_CELLS) == 63 == len({c for cells in EVAL_CELLS for c in cells})
    assert all(SPRITE_CELLS[c].direction != "back" for c in PROTOCOL_CELLS)
    ds = Sprites("test", limit_identities=2, poses="protocol")
    assert torch.equal(ds.set_sizes, torch.full((2,), 63))
    x = ds.frames(torch.tensor([1])[:, None], torch.arange(63)[None])[0]
    seqs = sprites_eval_sequences("test", limit_identities=2)
    shown = {tuple(frame.flatten().tolist()[::97]) for frame in seqs.frames()[9:].flatten(0, 1)}  # identity 1
    assert {tuple(frame.flatten().tolist()[::97]) for frame in x} == shown
    assert torch.equal(Sprites("test", limit_identities=2, poses="sheet").set_sizes, torch.full((2,), N_CELLS))
    with pytest.raises(UserInputError, match="unknown poses 'back'"):
        Sprites("test", poses="back")


def test_sampler_draws_distinct_frames_of_one_identity():
    ds = Sprites("train", limit_identities=50)
    seed, batch, n = 7, 16, 6
    x = ds.sample(batch, n, generator=torch.Generator().manual_seed(seed))
    assert x.shape == (batch, n, 3, 64, 64)
    # Replay the sampler's draws to see which set and poses each row came from.
    g = torch.Generator().manual_seed(seed)
    set_idx = torch.randint(len(ds), (batch,), generator=g)
    frame_idx = ds.sample_frame_indices(set_idx, n, generator=g)
    for row in frame_idx:
        assert len(set(row.tolist())) == n
    expected = ds.compositor.render(ds.identities[set_idx][:, None], frame_idx)
    assert torch.equal(x, expected)


def test_image_size_is_applied():
    ds = Sprites("test", image_size=32, limit_identities=2)
    assert ds.sample(3, 2).shape == (3, 2, 3, 32, 32)


def test_device_cpu_honoured():
    ds = Sprites("test", device="cpu", limit_identities=2)
    assert ds.sample(2, 2).device.type == "cpu"
    assert sprites_eval_sequences("test", device="cpu", limit_identities=1).frames().device.type == "cpu"
    with pytest.raises(UserInputError):
        Sprites("test", device="nonsense")


@pytest.mark.gpu
def test_device_cuda_matches_cpu():
    gpu = Sprites("test", device="cuda", limit_identities=3)
    cpu = Sprites("test", device="cpu", limit_identities=3)
    assert gpu.sample(2, 2).device.type == "cuda"
    set_idx, frame_idx = torch.tensor([[0], [2]]), torch.arange(0, 178, 7)
    assert torch.equal(gpu.frames(set_idx, frame_idx).cpu(), cpu.frames(set_idx, frame_idx))


# --- CLI ----------------------------------------------------------------------------------------


def test_export_cli_writes_the_protocol_files(tmp_path):
    out = tmp_path / "sprites"
    result = CliRunner().invoke(main, ["data", "export", "sprites", "--out", str(out), "--limit-identities", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"sprites_{s}_{k}.npy" for s in ("train", "test") for k in ("X", "A", "D", "id")
    )
    for split in ("train", "test"):
        X, A, D, ids = (np.load(out / f"sprites_{split}_{k}.npy") for k in ("X", "A", "D", "id"))
        assert X.shape == (18, 8, 64, 64, 3) and X.dtype == np.uint8
        assert A.shape == (18, 4) and A.dtype == np.int64
        assert D.dtype == ids.dtype == np.int64
        assert D.tolist() == list(range(9)) * 2
        assert np.array_equal(ids[::9], split_identities(split)[:2])
        assert np.array_equal(A, decode_identity(ids).numpy())
        seqs = sprites_eval_sequences(split, limit_identities=2)
        assert np.array_equal(X, seqs.frames(dtype=torch.uint8).permute(0, 1, 3, 4, 2).numpy())


def test_export_cli_rejects_a_file_as_output_dir(tmp_path):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    result = CliRunner().invoke(main, ["data", "export", "sprites", "--out", str(not_a_dir)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "existing file" in lines[0]
    assert not_a_dir.read_text() == "x"


def test_preview_cli_writes_a_png(tmp_path):
    out = tmp_path / "preview" / "grid.png"
    result = CliRunner().invoke(main, ["data", "preview", "sprites", "--out", str(out), "--identities", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temporary left behind

    bad = CliRunner().invoke(main, ["data", "preview", "sprites", "--out", str(tmp_path / "grid.nope")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_export_leaves_nothing_behind_on_error(tmp_path, monkeypatch):
    import pyro_dvae.data.sprites as sprites

    def fail(path, array):
        raise OSError("disk full")

    # export_sprites reads _write_npy from sprites.export, so the patch goes there.
    monkeypatch.setattr(sprites.export, "_write_npy", fail)
    with pytest.raises(OSError, match="disk full"):
        sprites.export_sprites(tmp_path, limit_identities=1, progress=False)
    assert list(tmp_path.iterdir()) == []
