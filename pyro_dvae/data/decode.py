"""Decoding videos and images into square uint8 frames of the cache size.

Videos are read with imageio (the ffmpeg plugin of imageio-ffmpeg; GIFs with pillow), images with
pillow. Each frame is converted to the requested channel count (1 = grey, 3 = RGB, alpha
dropped), cropped to a square and resized with a Lanczos filter. The crop is the central square,
or with ``crop="faces"`` a square around the largest face found by OpenCV's bundled Haar cascade
(1.4 times the face box, as for Aff-Wild style face data); a frame where no face is found reuses
the previous frame's box, and the central square is used until a first face is seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserInputError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".gif"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
CROPS = ("center", "faces")
FACE_MARGIN = 1.4
# Faces are searched on a copy at most this wide: detection cost grows with the pixel count.
FACE_SEARCH_WIDTH = 320

Box = tuple[int, int, int, int]  # left, top, right, bottom


def pil_mode(channels: int) -> str:
    """Pillow mode for a channel count (1 or 3)."""
    return "L" if channels == 1 else "RGB"


def image_channels(path: Path) -> int:
    """1 for greyscale images, 3 for everything else (colour, palette, alpha dropped)."""
    with Image.open(path) as image:
        return 1 if image.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def centre_box(width: int, height: int) -> Box:
    """The central square of a width x height frame."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_frame(image: Image.Image, size: int, channels: int, box: Box | None = None) -> np.ndarray:
    """(size, size, channels) uint8 from ``box`` (default: the central square) of ``image``."""
    image = image.convert(pil_mode(channels))
    box = box or centre_box(*image.size)
    square = image.resize((size, size), Image.Resampling.LANCZOS, box=box)
    return np.asarray(square, dtype=np.uint8).reshape(size, size, channels)


class FaceFinder:
    """Square crop boxes around the largest face, using OpenCV's bundled Haar cascade."""

    def __init__(self, track: bool = True, detector=None) -> None:
        """``detector``: anything with OpenCV's ``detectMultiScale`` (default: OpenCV's frontal-face
        Haar cascade)."""
        self._track = track
        self._last: Box | None = None
        try:
            import cv2
        except ImportError:
            raise UserInputError("crop='faces' needs OpenCV; install it with: pip install 'pyro-dvae[video]'") from None
        self._cv2 = cv2
        if detector is not None:
            self._detector = detector
            return
        cascades = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if cascades is None or not hasattr(cv2, "CascadeClassifier"):
            raise UserInputError(
                f"OpenCV {cv2.__version__} has no Haar face detector; "
                "install one that has: pip install 'opencv-python-headless<5'"
            )
        self._detector = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")
        if self._detector.empty():
            raise UserInputError(
                "OpenCV's face cascade file is missing; reinstall with: pip install 'pyro-dvae[video]'"
            )

    def box(self, frame: np.ndarray) -> Box:
        """Crop box for an (H, W[, C]) uint8 frame (the last face seen if none is found here)."""
        if not self._track:
            self._last = None
        height, width = frame.shape[:2]
        grey = frame if frame.ndim == 2 else self._cv2.cvtColor(frame[..., :3], self._cv2.COLOR_RGB2GRAY)
        scale = min(1.0, FACE_SEARCH_WIDTH / width)
        if scale < 1:
            grey = self._cv2.resize(grey, (round(width * scale), round(height * scale)))
        faces = self._detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)
        if len(faces):
            x, y, w, h = (v / scale for v in max(faces, key=lambda f: f[2] * f[3]))
            side = min(round(FACE_MARGIN * max(w, h)), width, height)
            left = int(np.clip(round(x + w / 2 - side / 2), 0, width - side))
            top = int(np.clip(round(y + h / 2 - side / 2), 0, height - side))
            self._last = (left, top, left + side, top + side)
        return self._last or centre_box(width, height)


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """Frames of a video as (H, W, 3) uint8 arrays, one at a time."""
    import imageio.v3 as iio

    gif = path.suffix.lower() == ".gif"
    # A context manager, so the decoder process and its pipes close however iteration ends.
    with iio.imopen(path, "r", plugin="pillow" if gif else "FFMPEG") as video:
        yield from video.iter(mode="RGB") if gif else video.iter()


class FrameDecoder:
    """Decodes videos and images to square uint8 frames with fixed settings.

    Parameters
    ----------
    size : side of the output frames.
    channels : 1 (grey) or 3 (RGB).
    crop : ``center`` or ``faces``; ``faces`` checks for OpenCV here, before any decoding.
    """

    def __init__(self, size: int, channels: int, crop: str = "center"):
        if crop not in CROPS:
            raise UserInputError(f"crop={crop!r} is not supported; use one of {', '.join(CROPS)}")
        if channels not in (1, 3):
            raise UserInputError(f"channels={channels!r} is not supported; use 1 or 3")
        self.size, self.channels, self.crop = size, channels, crop
        # Images of a set are not a sequence, so no face box is carried from one to the next.
        self._image_faces = FaceFinder(track=False) if crop == "faces" else None

    def video(self, path: Path) -> np.ndarray:
        """All frames of a video as (T, size, size, channels) uint8; T is 0 for an empty video.

        Raises whatever the decoder raises for unreadable or corrupt files.
        """
        faces = FaceFinder() if self.crop == "faces" else None
        frames = [
            square_frame(Image.fromarray(frame), self.size, self.channels, faces and faces.box(frame))
            for frame in video_frames(path)
        ]
        if not frames:
            return np.zeros((0, self.size, self.size, self.channels), np.uint8)
        return np.stack(frames)

    def image(self, path: Path) -> np.ndarray:
        """One image as (size, size, channels) uint8, upright according to its EXIF orientation."""
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            box = None
            if self._image_faces is not None:
                box = self._image_faces.box(np.asarray(image.convert("RGB")))
            return square_frame(image, self.size, self.channels, box)


def describe_error(err: BaseException) -> str:
    """One short line for a decoding error (decoders may attach pages of log output)."""
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    line = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line if len(line) <= 120 else line[:117] + "..."
