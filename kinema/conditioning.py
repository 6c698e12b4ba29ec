"""Frame counts, known-frame masks for every task, random masks for training, and window plans for long videos.

Frames follow the autoencoder's causal layout: a clip of 1+4k pixel frames has 1+k latent frames; latent 0
holds pixel frame 0 alone and latent i >= 1 holds pixel frames 4i-3 .. 4i. A task mask is a (T,) bool over
latent frames, True where the frame is known (given clean to the model) and False where it is generated.
Training masks are float and shaped (B, 1, T, 1, 1) so they broadcast over channels, height and width.
"""

from __future__ import annotations

import math
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
    return torch.zeros(latent_frames, dtype=torch.bool)


def image_mask(latent_frames: int, at: str = "start") -> torch.Tensor:
    """Image-to-video: the image is the first (at="start") or last (at="end") latent frame."""
    _check_frames(latent_frames)
    if at not in ("start", "end"):
        raise InputError(f"image position must be 'start' or 'end', got {at!r}")
    known = torch.zeros(latent_frames, dtype=torch.bool)
    known[0 if at == "start" else -1] = True
    return known


def extend_mask(latent_frames: int, known_frames: int, backward: bool = False) -> torch.Tensor:
    """Extend a clip: its `known_frames` latent frames come first (forwards) or last (backward=True).

    `known_frames` may be 0: a backward extension leaves out the clip's first latent frame, which is all a
    clip of under 5 frames has.
    """
    if not 0 <= known_frames < latent_frames:
        raise InputError(
            f"to extend a clip, its {known_frames} latent frame(s) must be non-negative and fewer than the "
            f"{latent_frames} of the result"
        )
    known = torch.zeros(latent_frames, dtype=torch.bool)
    if backward:
        known[latent_frames - known_frames :] = True
    else:
        known[:known_frames] = True
    return known


def fill_mask(latent_frames: int, known_indices: Iterable[int]) -> torch.Tensor:
    """Interpolate or fill missing frames: the latent frames at `known_indices` are known."""
    _check_frames(latent_frames)
    known = torch.zeros(latent_frames, dtype=torch.bool)
    for index in known_indices:
        if not -latent_frames <= index < latent_frames:
            raise InputError(f"known latent frame {index} is outside a video of {latent_frames} latent frames")
        known[index] = True
    return known


def connect_mask(latent_frames: int, head: int, tail: int) -> torch.Tensor:
    """Connect two clips: `head` known frames at the start, `tail` at the end, the middle generated."""
    if head < 0 or tail < 0 or head + tail >= latent_frames:
        raise InputError(
            f"connecting clips of {head} and {tail} latent frames needs a result longer than {head + tail} "
            f"latent frames, got {latent_frames}"
        )
    known = torch.zeros(latent_frames, dtype=torch.bool)
    known[:head] = True
    known[latent_frames - tail :] = True
    return known


def plan_windows(known: torch.Tensor, window: int, context: int, backward: bool = False) -> list[tuple[int, int]]:
    """Windows (start, end) of at most `window` latent frames covering every unknown frame once.

    Each window starts with up to `context` frames already fixed (known, or made by an earlier window) and is
    as long as the video allows, so cost grows linearly with duration. Windows run from the start, or from
    the end when `backward`. `known` is a (T,) bool mask.
    """
    if not 0 <= context < window:
        raise InputError(
            f"context of {context} latent frames must be non-negative and shorter than the window of {window}"
        )
    total = len(known)
    done = known.clone() if not backward else known.flip(0).clone()
    spans = []
    while not bool(done.all()):
        first = int((~done).nonzero()[0])
        start = max(0, first - context)
        end = min(total, start + window)
        start = max(0, min(start, end - window))
        spans.append((start, end))
        done[start:end] = True
    if backward:
        spans = [(total - end, total - start) for start, end in spans]
    return spans


def latent_frame_count(num_frames: int) -> int:
    """Latent frames for a video of 1 + 4k pixel frames."""
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_FACTOR:
        raise InputError(
            f"a video must have 1 + {TEMPORAL_FACTOR}k frames (1, 5, 9, 13, 17, ...), got {num_frames}"
        )
    return 1 + (num_frames - 1) // TEMPORAL_FACTOR


def latent_frames_covering(num_frames: int) -> int:
    """Latent frames of the shortest 1 + 4k clip holding `num_frames` pixel frames (rounding up)."""
    if num_frames < 1:
        raise InputError(f"a clip needs at least one frame, got {num_frames}")
    return 1 + math.ceil((num_frames - 1) / TEMPORAL_FACTOR)


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
