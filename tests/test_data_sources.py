"""Moving MNIST, the public Moving MNIST file, array files, video folders and image folders."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pyro_dvae.cli import main
from pyro_dvae.data import PATH_SOURCES, load_frame_sets, source_descriptions
from pyro_dvae.data.arrays import split_indices
from pyro_dvae.data.decode import FaceFinder, FrameDecoder
from pyro_dvae.data.files import DataWarning
from pyro_dvae.data.moving_mnist import MovingMNIST, digit_pool, load_digits
from pyro_dvae.errors import UserInputError
from pyro_dvae.runs import load_run


def moving_square(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(frames, height, width, 3) uint8: a coloured 8x8 square moving on black."""
    colour = np.random.default_rng(seed).integers(80, 256, 3)
    video = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        top, left = (3 * t) % (height - 8), (2 * t) % (width - 8)
        video[t, top : top + 8, left : left + 8] = colour
    return video


def write_videos(folder: Path, count: int = 3, frames: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        iio.imwrite(folder / f"clip{i}.mp4", moving_square(frames, 32, 48, i), plugin="FFMPEG", fps=10)


def skip_message(caught: pytest.WarningsRecorder) -> str:
    """The DataWarning's text (the ffmpeg plugin may add ResourceWarnings of its own)."""
    (message,) = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    return message


def write_image_tree(root: Path) -> None:
    """Three sets of varying sizes and channel counts."""
    for name, (height, width, grey) in {"a": (40, 30, False), "b": (20, 20, True), "c": (24, 32, False)}.items():
        (root / name).mkdir(parents=True)
        for t, frame in enumerate(moving_square(5, height, width, ord(name))):
            Image.fromarray(frame[..., 0] if grey else frame).save(root / name / f"{t}.png")


# ---------------------------------------------------------------- Moving MNIST (generated)


def reference_frame(images: np.ndarray, digits: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Straightforward rendering to check the vectorised one: paste each digit, combine by max."""
    frame = np.zeros((64, 64), np.uint8)
    for digit, (row, col) in zip(digits, corners, strict=True):
        frame[row : row + 28, col : col + 28] = np.maximum(frame[row : row + 28, col : col + 28], images[digit])
    return frame


def test_moving_mnist_renders_like_pasting_and_bounces_inside():
    data = MovingMNIST("train", digits=2, num_sequences=40, seed=3)
    images, _ = load_digits()
    assert data.positions.shape == (40, 20, 2, 2)
    assert int(data.positions.min()) == 0 and int(data.positions.max()) == 36
    # Constant speed of 3.6 px per frame, reflections included (rounding adds at most 1 px).
    steps = (data.positions[:, 1:] - data.positions[:, :-1]).float().norm(dim=-1)
    assert float(steps.max()) <= 3.6 + 1.5
    for s in (0, 17, 39):
        sequence = (data.sequence(s)[:, 0] * 255).round().to(torch.uint8).numpy()
        for t in (0, 9, 19):
            expected = reference_frame(images, data.digit_indices[s].numpy(), data.positions[s, t].numpy())
            np.testing.assert_array_equal(sequence[t], expected)


def test_moving_mnist_single_digit_keeps_its_whole_mass_in_the_frame():
    data = load_frame_sets("moving-mnist-1", "test", num_sequences=16, seed=1)
    assert data.name == "moving-mnist-1" and data.digit_indices.shape == (16, 1)
    images, labels = load_digits()
    frames = data.frames(torch.arange(16)[:, None], torch.arange(20)[None, :])  # (16, 20, 1, 64, 64)
    mass = (frames * 255).round().sum(dim=(-1, -2, -3))
    expected = torch.from_numpy(images.astype(np.float32)).sum(dim=(1, 2))[data.digit_indices[:, 0]]
    torch.testing.assert_close(mass, expected[:, None].expand(16, 20))
    assert torch.equal(data.labels[:, 0], torch.from_numpy(labels.astype(np.int64))[data.digit_indices[:, 0]])


def test_moving_mnist_is_reproducible_by_seed_and_resizes():
    a = MovingMNIST("train", num_sequences=8, seed=5, image_size=32)
    b = MovingMNIST("train", num_sequences=8, seed=5, image_size=32)
    c = MovingMNIST("train", num_sequences=8, seed=6)
    assert torch.equal(a.positions, b.positions) and torch.equal(a.digit_indices, b.digit_indices)
    assert not torch.equal(a.positions, c.positions)
    x = a.sample(4, 3, generator=torch.Generator().manual_seed(0))
    y = b.sample(4, 3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 1, 32, 32) and torch.equal(x, y)


def test_moving_mnist_splits_use_disjoint_digit_images():
    _, labels = load_digits()
    train, test = digit_pool(labels, "train"), digit_pool(labels, "test")
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert 950 <= len(test) <= 1050 and set(labels[test]) == set(range(10))
    data = MovingMNIST("test", num_sequences=200)
    assert set(data.digit_indices.flatten().tolist()) <= set(test)
    assert len(MovingMNIST("test")) == 1000


def test_train_sequences_sizes_the_training_split_only():
    _, labels = load_digits()
    assert len(MovingMNIST("train", digits=1)) == 10000
    many = MovingMNIST("train", digits=1, train_sequences=60000)
    assert len(many) == 60000
    # 10,000 draws leave about a third of the 9,000 training images unseen; 60,000 draw nearly all.
    seen = len(set(many.digit_indices.flatten().tolist()))
    assert seen > 0.99 * len(digit_pool(labels, "train"))
    assert len(set(MovingMNIST("train", digits=1).digit_indices.flatten().tolist())) < 0.7 * seen
    # The test split (what evaluations read) is the same with or without it.
    test, same = MovingMNIST("test", digits=1), MovingMNIST("test", digits=1, train_sequences=60000)
    assert torch.equal(test.positions, same.positions) and torch.equal(test.digit_indices, same.digit_indices)
    assert len(MovingMNIST("train", num_sequences=7, train_sequences=60000)) == 7  # num_sequences wins


def test_moving_mnist_options_are_checked():
    with pytest.raises(UserInputError, match="known options: digits, num_sequences, train_sequences"):
        load_frame_sets("moving-mnist", speed=2)
    with pytest.raises(UserInputError, match="moving-mnist-1 has digits=1"):
        load_frame_sets("moving-mnist-1", digits=2)
    with pytest.raises(UserInputError, match="digits=1 or digits=2"):
        load_frame_sets("moving-mnist", digits=3)


# ---------------------------------------------------------------- array files


def test_official_moving_mnist_file_is_memory_mapped_time_first(tmp_path):
    official = np.random.default_rng(0).integers(0, 256, (20, 4, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", official)
    train = load_frame_sets(tmp_path / "mnist_test_seq.npy", "train")
    test = load_frame_sets(tmp_path / "mnist_test_seq.npy", "test")
    assert (len(train), len(test)) == (3, 1) and train.set_sizes.tolist() == [20, 20, 20]
    assert train.memory_mapped
    np.testing.assert_array_equal((train.sequence(2)[:, 0] * 255).round().numpy(), official[:, 2])
    np.testing.assert_array_equal((test.sequence(0)[:, 0] * 255).round().numpy(), official[:, 3])

    np.save(tmp_path / "mnist_test_seq.npy", official[:, :, :32])
    with pytest.raises(UserInputError, match=r"\(20, n, 64, 64\) uint8"):
        load_frame_sets(tmp_path / "mnist_test_seq.npy")


def test_array_files_uint8_and_float_with_channels(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (5, 6, 12, 16), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    data = load_frame_sets(tmp_path / "grey.npy", "train")
    # Non-square frames are centre-cropped: 16 wide -> columns 2..13.
    assert (len(data), data.channels, data.native_size) == (4, 1, 12)
    np.testing.assert_array_equal((data.sequence(1)[:, 0] * 255).round().numpy(), grey[1, :, :, 2:14])

    colour = np.random.default_rng(2).random((3, 4, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "colour.npz", frames=colour, extra=np.zeros(1))
    data = load_frame_sets(tmp_path / "colour.npz", "test", image_size=4)
    assert len(data) == 1 and data.sample(2, 3).shape == (2, 3, 3, 4, 4)
    torch.testing.assert_close(
        load_frame_sets(tmp_path / "colour.npz", "test").sequence(0),
        torch.from_numpy(colour[2]).permute(0, 3, 1, 2),
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 3, 8, 8), 2.0, np.float32), r"values in \[2, 2\]"),
        (np.zeros((2, 3, 8), np.uint8), "shape"),
        (np.zeros((2, 3, 8, 8, 4), np.uint8), "C = 1 or 3"),
        (np.zeros((2, 3, 8, 8), np.int64), "dtype int64"),
        (np.zeros((0, 3, 8, 8), np.uint8), "empty axis"),
    ],
)
def test_bad_array_files_give_clear_errors(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(UserInputError, match=message):
        load_frame_sets(tmp_path / "bad.npy")


def test_corrupt_array_file_and_missing_path(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(UserInputError, match="cannot read .* as a numpy array"):
        load_frame_sets(tmp_path / "broken.npy")
    with pytest.raises(UserInputError, match="neither a registered name"):
        load_frame_sets(tmp_path / "nowhere")


def test_split_rule():
    assert split_indices(1, "train").tolist() == split_indices(1, "test").tolist() == [0]
    assert (split_indices(2, "train").tolist(), split_indices(2, "test").tolist()) == ([0], [1])
    assert (len(split_indices(30, "train")), split_indices(30, "test").tolist()) == (27, [27, 28, 29])
    assert len(split_indices(30, "test", test_fraction=0.5)) == 15
    assert len(split_indices(30, "train", test_fraction=0)) == len(split_indices(30, "test", test_fraction=0)) == 30


# ---------------------------------------------------------------- videos and images


def test_video_folder_loads_and_skips_bad_files(tmp_path):
    folder = tmp_path / "videos"
    write_videos(folder)
    iio.imwrite(folder / "z.gif", moving_square(6, 24, 24, 9), plugin="pillow")
    (folder / "corrupt.mp4").write_bytes(b"\x00garbage" * 20)
    (folder / "empty.avi").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    with pytest.warns(DataWarning) as caught:
        data = load_frame_sets(folder, "train", image_size=16)
    message = skip_message(caught)
    for name in ("corrupt.mp4", "empty.avi", "notes.txt"):
        assert name in message
    assert data.set_names == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert (data.channels, data.native_size) == (3, 16) and data.set_sizes.tolist() == [8, 8, 8]
    assert data.sample(2, 4).shape == (2, 4, 3, 16, 16)
    # The held-out set is the last in name order; GIFs are decoded losslessly (up to resizing).
    with pytest.warns(DataWarning):  # the skipped files are reported on every load
        test = load_frame_sets(folder, "test", image_size=24)
    assert test.set_names == ["z.gif"]
    gif = torch.from_numpy(moving_square(6, 24, 24, 9)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(test.sequence(0), gif, atol=2 / 255, rtol=0)
    # Centre crop of 32x48 keeps columns 8..39: in frame 6 the square (rows 18..25, columns
    # 12..19) lands at rows 9..12, columns 2..5 of the 16x16 frame.
    frame = data.sequence(0)[6].mean(0)
    assert float(frame[9:13, 2:6].mean()) > 0.2 and float(frame[:6, 8:].mean()) < 0.05
    with pytest.raises(UserInputError, match="fewer than 9 frames.*clip0.mp4 \\(8\\)") as err:
        data.check_frames_per_set(9)
    assert "\n" not in str(err.value)
    with pytest.warns(DataWarning) as caught:
        longer = load_frame_sets(folder, "test", image_size=16, min_frames=7)
    assert "z.gif: 6 frames, fewer than min_frames=7" in skip_message(caught)
    assert longer.set_names == ["clip2.mp4"] and longer.set_sizes.tolist() == [8]


def test_cache_is_reused_and_invalidated_per_file(tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    write_videos(folder, count=2)
    first = load_frame_sets(folder, image_size=16).sequence(0)
    assert (folder / ".pyro-dvae-cache" / "16px-3ch-center" / "manifest.json").is_file()

    decoded: list[str] = []
    real_video = FrameDecoder.video

    def counting(self, path):
        decoded.append(path.name)
        return real_video(self, path)

    monkeypatch.setattr(FrameDecoder, "video", counting)
    again = load_frame_sets(folder, image_size=16)
    assert decoded == [] and torch.equal(again.sequence(0), first)

    iio.imwrite(folder / "clip1.mp4", moving_square(10, 32, 48, 7), plugin="FFMPEG", fps=10)
    os.utime(folder / "clip1.mp4", ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    write_videos(tmp_path / "more", count=1)
    (tmp_path / "more" / "clip0.mp4").rename(folder / "new.mp4")
    data = load_frame_sets(folder, "train", image_size=16, test_fraction=0)
    assert sorted(decoded) == ["clip1.mp4", "new.mp4"]
    assert data.set_sizes.tolist() == [8, 10, 8]

    (folder / "new.mp4").unlink()
    load_frame_sets(folder, image_size=16)
    cache = folder / ".pyro-dvae-cache" / "16px-3ch-center"
    assert len(list(cache.glob("*.npy"))) == 2


@pytest.mark.parametrize("manifest", ['[1, 2]', '{"version": 1, "settings": {}, "entries": [', 'null',
                                      '{"version": 1, "settings": SETTINGS, "entries": {"clip0.mp4": 3}}',
                                      '{"version": 1, "settings": SETTINGS, "entries": []}'])
def test_a_malformed_cache_manifest_counts_as_empty(tmp_path, manifest):
    folder = tmp_path / "videos"
    write_videos(folder, count=1)
    first = load_frame_sets(folder, image_size=16, test_fraction=0).sequence(0)
    path = folder / ".pyro-dvae-cache" / "16px-3ch-center" / "manifest.json"
    settings = json.dumps(json.loads(path.read_text())["settings"])
    path.write_text(manifest.replace("SETTINGS", settings))
    again = load_frame_sets(folder, image_size=16, test_fraction=0).sequence(0)  # decoded again
    assert torch.equal(again, first) and json.loads(path.read_text())["entries"]["clip0.mp4"]["file"]


def test_cache_dir_option_keeps_the_data_folder_untouched(tmp_path):
    write_videos(tmp_path / "videos", count=1)
    load_frame_sets(tmp_path / "videos", image_size=16, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "videos" / ".pyro-dvae-cache").exists()
    (entry,) = (tmp_path / "cache").iterdir()
    assert entry.name.startswith("videos-") and (entry / "16px-3ch-center" / "manifest.json").is_file()


def test_image_folder_tree_with_varying_sizes_and_channels(tmp_path):
    root = tmp_path / "faces"
    write_image_tree(root)
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "b" / "readme.md").write_text("notes")
    (root / "empty").mkdir()
    (root / "loose.png").write_bytes(b"")
    with pytest.warns(DataWarning) as caught:
        train = load_frame_sets(root, "train", image_size=16, test_fraction=0.4)
    message = skip_message(caught)
    for name in ("b/broken.jpg", "b/readme.md", "empty/", "loose.png"):
        assert name in message
    assert train.set_names == ["a", "b"] and train.set_sizes.tolist() == [5, 5]
    assert (train.channels, train.native_size) == (3, 16)  # the first image ("a/0.png") is RGB
    with pytest.warns(DataWarning):
        grey = load_frame_sets(root, "test", channels=1, test_fraction=0.4)
    assert (grey.set_names, grey.channels, grey.native_size) == (["c"], 1, 64)


def test_empty_or_unusable_folders_raise_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="holds nothing"):
        load_frame_sets(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(UserInputError, match="no sub-folders"):
        load_frame_sets(tmp_path / "flat")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.mp4").write_bytes(b"junk")
    with pytest.warns(DataWarning), pytest.raises(UserInputError, match="no usable videos") as err:
        load_frame_sets(tmp_path / "bad")
    assert "\n" not in str(err.value)


def test_face_crop_needs_opencv(tmp_path, monkeypatch):
    write_videos(tmp_path / "v", count=1)
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    with pytest.raises(UserInputError, match=r"pip install 'pyro-dvae\[video\]'"):
        load_frame_sets(tmp_path / "v", crop="faces")
    with pytest.raises(UserInputError, match="crop='middle'"):
        load_frame_sets(tmp_path / "v", crop="middle")


def test_face_crop_falls_back_to_the_centre_without_faces(tmp_path):
    pytest.importorskip("cv2")
    write_videos(tmp_path / "v", count=1)
    faces = load_frame_sets(tmp_path / "v", crop="faces", image_size=16)
    centre = load_frame_sets(tmp_path / "v", image_size=16)
    assert torch.equal(faces.sequence(0), centre.sequence(0))


def test_face_box_is_a_square_around_the_largest_face_and_tracks_it():
    pytest.importorskip("cv2")
    detections = [[(10, 20, 30, 30), (200, 100, 8, 8)], []]
    finder = FaceFinder(detector=SimpleNamespace(detectMultiScale=lambda *args, **kwargs: detections.pop(0)))
    frame = np.zeros((120, 300, 3), np.uint8)
    # 1.4 x 30 = 42 px, centred on the face centre (25, 35).
    assert finder.box(frame) == (4, 14, 46, 56)
    assert finder.box(frame) == (4, 14, 46, 56)  # no face found: the last box is kept


# ---------------------------------------------------------------- command line


def test_data_help_and_sources_list_every_source():
    runner = CliRunner()
    for args in (["data", "--help"], ["data", "sources"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        for name in (*source_descriptions(), *PATH_SOURCES):
            assert name in result.output
    assert {"sprites", "squares", "moving-mnist", "moving-mnist-1"} <= set(source_descriptions())


@pytest.mark.parametrize("kind", ["videos", "images", "array", "moving-mnist-1"])
def test_train_cli_runs_on_each_kind_of_source(tmp_path, kind):
    options: list[str] = []
    if kind == "moving-mnist-1":
        data = kind
        options = ["--data-option", "num_sequences=16"]
    elif kind == "videos":
        data = tmp_path / "videos"
        write_videos(data, count=2)
        options = ["--crop", "faces"] if importlib.util.find_spec("cv2") else ["--crop", "center"]
    elif kind == "images":
        data = tmp_path / "images"
        write_image_tree(data)
    else:
        data = tmp_path / "sets.npy"
        np.save(data, np.random.default_rng(0).integers(0, 256, (4, 6, 20, 20), dtype=np.uint8))
    args = ["train", "--data", str(data), *options, "--steps", "2", "--preset", "tiny", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    if kind == "videos":
        assert load_run(tmp_path / "run").config.data.options["crop"] == options[1]
