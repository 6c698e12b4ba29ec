"""Known-frame masks for every task, random masks for training, and window plans for long videos.

Masks are float tensors over latent frames, 1 where the frame is known (given clean to the model) and 0 where
it is generated, shaped (B or 1, 1, T, 1, 1) so they broadcast over channels, height and width.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from kinema.errors import InputError

MASK_STRATEGIES = ("none", "first", "first_k", "last_k", "both_ends", "scattered")
DEFAULT_MASK_PROBS = {
    "none": 0.5,
    "first": 0.15,
    "first_k": 0.1,
    "last_k": 0.1,
    "both_ends": 0.1,
    "scattered": 0.05,
}
TEMPORAL_FACTOR = 4  # the autoencoder's time compression: pixel frames 1+4k <-> latent frames 1+k


def _check_frames(latent_frames: int) -> None:
    if latent_frames < 1:
        raise InputError(f"need at least one latent frame, got {latent_frames}")


def _as_mask(frames: torch.Tensor) -> torch.Tensor:
    """(T,) -> (1, 1, T, 1, 1) float."""
    return frames.float().view(1, 1, -1, 1, 1)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def strategy_mask(strategy: str, latent_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random (T,) float mask of the given strategy; always leaves at least one frame to generate.

    A strategy that cannot leave a frame unknown at this length (e.g. "first" for T = 1) gives "none".
    """
    _check_frames(latent_frames)
    T = latent_frames
    frames = torch.zeros(T)
    if strategy not in MASK_STRATEGIES:
        raise InputError(f"unknown mask strategy {strategy!r}; choose from {', '.join(MASK_STRATEGIES)}")
    if strategy == "none" or T < 2 or (strategy == "both_ends" and T < 3):
        return frames
    if strategy == "first":
        frames[0] = 1
    elif strategy == "first_k":
        frames[: _randint(1, T - 1, generator)] = 1
    elif strategy == "last_k":
        frames[T - _randint(1, T - 1, generator) :] = 1
    elif strategy == "both_ends":
        head = _randint(1, T - 2, generator)
        tail = _randint(1, T - 1 - head, generator)
        frames[:head] = 1
        frames[T - tail :] = 1
    else:  # scattered
        count = _randint(1, T - 1, generator)
        frames[torch.randperm(T, generator=generator)[:count]] = 1
    return frames


def random_known_mask(
    batch: int,
    latent_frames: int,
    generator: torch.Generator | None = None,
    probs: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """A training mask per sample, each drawn from a strategy chosen with `probs`; (B, 1, T, 1, 1) float."""
    probs = DEFAULT_MASK_PROBS if probs is None else probs
    unknown = set(probs) - set(MASK_STRATEGIES)
    if unknown:
        raise InputError(f"unknown mask strategy {sorted(unknown)}; choose from {', '.join(MASK_STRATEGIES)}")
    weights = torch.tensor([float(probs.get(name, 0.0)) for name in MASK_STRATEGIES])
    if (weights < 0).any() or weights.sum() <= 0:
        raise InputError(f"mask strategy probabilities must be non-negative and not all zero, got {dict(probs)}")
    choices = torch.multinomial(weights, batch, replacement=True, generator=generator)
    masks = [strategy_mask(MASK_STRATEGIES[int(i)], latent_frames, generator) for i in choices]
    return torch.stack(masks).view(batch, 1, latent_frames, 1, 1)


def text_to_video_mask(latent_frames: int) -> torch.Tensor:
    """Nothing known: generate every frame."""
    _check_frames(latent_frames)
    return _as_mask(torch.zeros(latent_frames))


def image_mask(latent_frames: int, at: str = "start") -> torch.Tensor:
    """Image-to-video: the image is the first (at="start") or last (at="end") latent frame."""
    _check_frames(latent_frames)
    if at not in ("start", "end"):
        raise InputError(f"image position must be 'start' or 'end', got {at!r}")
    frames = torch.zeros(latent_frames)
    frames[0 if at == "start" else -1] = 1
    return _as_mask(frames)


def extend_mask(latent_frames: int, known_frames: int, backward: bool = False) -> torch.Tensor:
    """Extend a clip: its `known_frames` latent frames come first (forwards) or last (backward=True)."""
    if not 1 <= known_frames < latent_frames:
        raise InputError(
            f"to extend a clip, its {known_frames} latent frame(s) must be at least 1 and fewer than the "
            f"{latent_frames} of the result"
        )
    frames = torch.zeros(latent_frames)
    if backward:
        frames[latent_frames - known_frames :] = 1
    else:
        frames[:known_frames] = 1
    return _as_mask(frames)


def fill_mask(latent_frames: int, known_indices: Iterable[int]) -> torch.Tensor:
    """Interpolate or fill missing frames: the latent frames at `known_indices` are known."""
    _check_frames(latent_frames)
    frames = torch.zeros(latent_frames)
    for index in known_indices:
        if not -latent_frames <= index < latent_frames:
            raise InputError(f"known latent frame {index} is outside a video of {latent_frames} latent frames")
        frames[index] = 1
    return _as_mask(frames)


def connect_mask(latent_frames: int, head: int, tail: int) -> torch.Tensor:
    """Connect two clips: `head` known frames at the start, `tail` at the end, the middle generated."""
    if head < 0 or tail < 0 or head + tail >= latent_frames:
        raise InputError(
            f"connecting clips of {head} and {tail} latent frames needs a result longer than {head + tail} "
            f"latent frames, got {latent_frames}"
        )
    frames = torch.zeros(latent_frames)
    frames[:head] = 1
    frames[latent_frames - tail :] = 1
    return _as_mask(frames)


def window_plan(
    total_latent_frames: int, window_latent_frames: int, context_latent_frames: int
) -> list[tuple[int, int, int]]:
    """Windows (start, end, context) covering a long latent video; each window's first `context` frames
    are the last frames of the window before, so every frame is generated exactly once."""
    _check_frames(total_latent_frames)
    if not 0 <= context_latent_frames < window_latent_frames:
        raise InputError(
            f"context of {context_latent_frames} latent frames must be non-negative and shorter than the "
            f"window of {window_latent_frames}"
        )
    plan = [(0, min(window_latent_frames, total_latent_frames), 0)]
    while plan[-1][1] < total_latent_frames:
        start = plan[-1][1] - context_latent_frames
        plan.append((start, min(start + window_latent_frames, total_latent_frames), context_latent_frames))
    return plan


def latent_frame_count(num_frames: int) -> int:
    """Latent frames for a video of 1 + 4k pixel frames."""
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_FACTOR:
        raise InputError(
            f"a video must have 1 + {TEMPORAL_FACTOR}k frames (1, 5, 9, 13, 17, ...), got {num_frames}"
        )
    return 1 + (num_frames - 1) // TEMPORAL_FACTOR


def pixel_frame_count(latent_frames: int) -> int:
    """Pixel frames decoded from `latent_frames` latent frames."""
    _check_frames(latent_frames)
    return 1 + TEMPORAL_FACTOR * (latent_frames - 1)


def latent_index(frame: int) -> int:
    """The latent frame holding pixel frame `frame`: 0 -> 0, 1..4 -> 1, 5..8 -> 2, ..."""
    if frame < 0:
        raise InputError(f"frame index must be non-negative, got {frame}")
    return 0 if frame == 0 else 1 + (frame - 1) // TEMPORAL_FACTOR


def pixel_range(latent_frame: int) -> tuple[int, int]:
    """Pixel frames [start, end) that latent frame `latent_frame` encodes."""
    if latent_frame < 0:
        raise InputError(f"latent frame index must be non-negative, got {latent_frame}")
    if latent_frame == 0:
        return (0, 1)
    start = 1 + TEMPORAL_FACTOR * (latent_frame - 1)
    return (start, start + TEMPORAL_FACTOR)


def known_latent_indices(known_pixel_frames: Iterable[int]) -> list[int]:
    """Latent frames all of whose pixel frames are known; partly known latent frames are generated."""
    known = set(known_pixel_frames)
    candidates = sorted({latent_index(f) for f in known})
    return [j for j in candidates if all(f in known for f in range(*pixel_range(j)))]
