"""The digit judge: a translation-invariant 10-way classifier of one-digit Moving MNIST frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..metrics import accuracy, centre_of_mass
from .base import JUDGE_SIZE, Judge, JudgeKind, JudgeSettings, augment, round_trip

N_DIGITS = 10


def crop_around_centre(x: Tensor, size: int) -> Tensor:
    """A (size x size) window of each frame (..., C, H, W) centred on its centre of mass, zero-padded."""
    flat = x.reshape(-1, *x.shape[-3:])
    half = size // 2
    # In the padded frame, the window that starts at the (rounded) centre is centred on it.
    start = centre_of_mass(flat).round().long().clamp(0, x.shape[-1] - 1)
    padded = F.pad(flat, (half, half, half, half))
    offsets = torch.arange(size, device=x.device)
    rows, cols = (start[:, 0, None] + offsets), (start[:, 1, None] + offsets)
    frame = torch.arange(len(flat), device=x.device)[:, None, None]
    window = padded[frame, :, rows[:, :, None], cols[:, None, :]]  # (M, size, size, C)
    return window.permute(0, 3, 1, 2).reshape(*x.shape[:-3], x.shape[-3], size, size)


class DigitJudgeNet(nn.Module):
    """A 64x64 grey frame with one digit -> digit class logits (10).

    The frame is first cropped to a window around its centre of mass, so the classifier is
    translation invariant wherever the digit moved (and cheap: a small MNIST-style CNN).
    """

    window = 40  # a 28x28 digit whose ink centre is off its box centre still fits

    def __init__(self, width: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i in range(3):
            layers += [nn.Conv2d(channels, width * 2**i, 3, 1, 1), nn.BatchNorm2d(width * 2**i), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = width * 2**i
        side = self.window // 8
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, 128), nn.ReLU(),
                                 nn.Linear(128, N_DIGITS))

    def forward(self, x: Tensor) -> Tensor:
        """x (..., 1, 64, 64) -> logits (..., 10)."""
        crops = crop_around_centre(x, self.window)
        return self.net(crops.reshape(-1, *crops.shape[-3:])).reshape(*x.shape[:-3], N_DIGITS)

    def read_digits(self, x: Tensor) -> Tensor:
        """64x64 frames (..., 1, 64, 64) -> digit probabilities (..., 10)."""
        return self.eval()(x).softmax(-1)


def judge_digits_accuracy(judge: Judge, data, size: int = JUDGE_SIZE, batch_size: int = 64) -> dict[str, float]:
    """Frame-level digit accuracy on a one-digit Moving MNIST split seen at ``size``."""
    correct, total = 0.0, 0
    frames = torch.arange(int(data.set_sizes[0]), device=data.device)
    for start in range(0, len(data), batch_size):
        sets = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        probs = judge.digits(round_trip(data.frames(sets[:, None], frames), size))
        labels = data.labels[sets, 0, None].expand(-1, len(frames))
        correct += accuracy(probs.argmax(-1), labels) * labels.numel()
        total += labels.numel()
    return {"digit": correct / total}


def _digit_data(settings: JudgeSettings, device: torch.device):
    from ...data.moving_mnist import MovingMNIST

    train = MovingMNIST("train", device=device, digits=1,
                        **({"num_sequences": settings.limit} if settings.limit else {}))
    test = MovingMNIST("test", device=device, digits=1,
                       **({"num_sequences": settings.test_limit} if settings.test_limit else {}))
    return train, test


def _digit_loss(net: DigitJudgeNet, data, settings: JudgeSettings, generator: torch.Generator) -> Tensor:
    """One batch of ``settings.batch_size`` train frames (a random frame of random sequences)."""
    sets = torch.randint(len(data), (settings.batch_size,), generator=generator, device=data.device)
    frames = torch.randint(int(data.set_sizes[0]), (settings.batch_size,), generator=generator, device=data.device)
    x = augment(data.frames(sets, frames), settings, generator)
    return F.cross_entropy(net(x), data.labels[sets, 0])


def _data_version() -> bytes:
    from ...data import moving_mnist

    return (moving_mnist.DIGITS_FILE.read_bytes()
            + repr((moving_mnist.STEP, moving_mnist.TEST_FRACTION, moving_mnist.DIGIT_SIZE)).encode())


JUDGE = JudgeKind(name="digits", defaults={"batch_size": 64, "steps": 1500, "width": 16},
                  build=lambda settings: DigitJudgeNet(settings.width), data=_digit_data,
                  batch_loss=_digit_loss, accuracy=judge_digits_accuracy, data_version=_data_version)
