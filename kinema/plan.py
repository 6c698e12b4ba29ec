"""Turn a generation request into latent frames: which are known, their values, and the windows to sample.

Frames follow the autoencoder's causal layout (see `kinema.conditioning`). Inputs are encoded at their
place in the output; after decoding, their exact pixels are put back, so what the user gave survives bit
for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from kinema.conditioning import (
    connect_mask,
    extend_mask,
    fill_mask,
    image_mask,
    known_latent_indices,
    latent_frame_count,
    latent_frames_covering,
    pixel_frame_count,
    plan_windows,
    text_to_video_mask,
)
from kinema.errors import InputError
from kinema.io import fit_frames

if TYPE_CHECKING:
    from kinema.pipeline import GenerationRequest, Pipeline

MAX_SECONDS = 600.0


@dataclass
class LatentPlan:
    """Known latents, the windows to sample, and how to turn decoded frames into the output."""

    known_latent: torch.Tensor  # (C, T, h, w)
    known: torch.Tensor  # (T,) bool
    windows: list[tuple[int, int, str, float]]  # (start, end, prompt, start_time)
    fps: float
    finish: Callable[[np.ndarray], np.ndarray]
    init_latent: torch.Tensor | None = None
    copies: dict[int, tuple[int, int]] = field(default_factory=dict)


def usable_tail(frames: np.ndarray) -> np.ndarray:
    """The last 1+4k frames of a clip (all of it when it already has that length)."""
    keep = pixel_frame_count(1 + (len(frames) - 1) // 4)
    return frames[len(frames) - keep :]


def pad_causal(frames: np.ndarray) -> np.ndarray:
    """Hold the last frame until the clip has 1+4k frames."""
    extra = pixel_frame_count(latent_frames_covering(len(frames))) - len(frames)
    return np.concatenate([frames, np.repeat(frames[-1:], extra, 0)]) if extra else frames


def _blend(frames: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear blends of `frames` at fractional frame `positions`."""
    low = np.floor(positions).astype(int).clip(0, len(frames) - 1)
    high = (low + 1).clip(0, len(frames) - 1)
    weight = (positions - low)[:, None, None, None]
    return (frames[low] * (1 - weight) + frames[high] * weight).round().astype(np.uint8)


def plan_request(pipe: Pipeline, request: GenerationRequest, width: int, height: int, fps: float) -> LatentPlan:
    """Build the latent plan for any task."""
    s = pipe.cfg.sampling
    channels = pipe.cfg.vae.latent_channels
    h, w = height // pipe.cfg.vae.spatial_downsample, width // pipe.cfg.vae.spatial_downsample
    window, context = s.window_frames and latent_frames_covering(s.window_frames), s.context_latent_frames
    if not (0 < request.seconds <= MAX_SECONDS) and request.task not in ("interpolate", "fill", "edit"):
        raise InputError(f"seconds {request.seconds}: choose a duration above 0 and up to {MAX_SECONDS:g}")
    new_frames = max(1, round(request.seconds * fps))
    task = request.task

    def empty(total: int) -> torch.Tensor:
        return torch.zeros(channels, total, h, w)

    def windows(known, prompt_at=None, start_time=1.0, backward=False):
        spans = plan_windows(known, window, context, backward)
        out = []
        for start, end in spans:
            prompt = prompt_at(start, end) if prompt_at else request.prompt
            out.append((start, end, prompt, start_time))
        return out

    def need_video(name: str, video) -> np.ndarray:
        if video is None:
            raise InputError(f"the {task} task needs {name}")
        return fit_frames(video.frames, width, height, request.fit)

    if task in ("text", "loop", "storyboard"):
        total = latent_frames_covering(new_frames)
        loop_tail = min(context, total - 1) if task == "loop" else 0
        latent, known = empty(total + loop_tail), text_to_video_mask(total + loop_tail)

        def prompt_at(start: int, end: int) -> str:
            if not request.shots:
                return request.prompt
            middle = ((start + end) / 2 * 4) / fps
            for shot in request.shots:
                if shot.start <= middle < shot.end:
                    return shot.prompt
            return request.shots[-1].prompt

        if task == "storyboard" and not request.shots:
            raise InputError("the storyboard task needs at least one shot (start, end, prompt)")
        spans = windows(known[:total], prompt_at)
        copies = {}
        if loop_tail:
            # The bridge window ends on copies of the clip's own opening latents, so the end flows into the start.
            end = total + loop_tail
            spans.append((max(0, end - window), end, request.prompt, 1.0))
            copies[len(spans) - 1] = (1, loop_tail)
        keep = new_frames

        def finish(frames: np.ndarray) -> np.ndarray:
            if loop_tail:
                frames = frames[: len(frames) - 4 * loop_tail]
            return frames[:keep]

        plan = LatentPlan(latent, known, spans, fps, finish)
        plan.copies = copies
        return plan

    if task == "image":
        if request.image is None:
            raise InputError("the image task needs an image (--image)")
        image = fit_frames(request.image[None], width, height, request.fit)
        total = latent_frames_covering(new_frames)
        latent, known = empty(total), image_mask(total, request.image_at)
        at_end = request.image_at == "end"
        if at_end:
            latent[:, -1] = pipe.encode_frames(np.repeat(image, 5, 0))[:, 1]
        else:
            latent[:, 0] = pipe.encode_frames(image)[:, 0]
        return LatentPlan(latent, known, windows(known, backward=at_end), fps,
                          lambda f: f[len(f) - new_frames :] if at_end else f[:new_frames])

    if task == "extend":
        source = need_video("an input video", request.video)
        fps = float(request.fps or request.video.fps)
        if request.backward:
            tail = source[: pixel_frame_count(1 + (len(source) - 1) // 4)]
            grown = latent_frames_covering(new_frames + 1)
            total = grown + latent_frame_count(len(tail)) - 1
            latent, known = empty(total), extend_mask(total, total - grown, backward=True)
            encoded = pipe.encode_frames(tail)
            latent[:, grown:] = encoded[:, 1:]

            def finish(frames: np.ndarray) -> np.ndarray:
                made = frames[: pixel_frame_count(grown)]  # ends where the input's first frame sits
                return np.concatenate([made[len(made) - 1 - new_frames : -1], source])

            return LatentPlan(latent, known, windows(known, backward=True), fps, finish)
        tail = usable_tail(source)
        head = source[: len(source) - len(tail)]
        encoded = pipe.encode_frames(tail)
        grown = math.ceil(new_frames / 4)
        total = encoded.shape[1] + grown
        latent, known = empty(total), extend_mask(total, encoded.shape[1])
        latent[:, : encoded.shape[1]] = encoded
        return LatentPlan(latent, known, windows(known), fps,
                          lambda f: np.concatenate([head, tail, f[len(tail) : len(tail) + new_frames]]))

    if task == "connect":
        first = need_video("a first clip", request.video)
        second = need_video("a second clip", request.video_b)
        fps = float(request.fps or request.video.fps)
        a_tail = usable_tail(first)
        b_head = second[: pixel_frame_count(1 + (len(second) - 1) // 4)]
        a_lat, b_lat = pipe.encode_frames(a_tail), pipe.encode_frames(b_head)
        gap = max(1, math.ceil((new_frames + 1) / 4))
        total = a_lat.shape[1] + gap + b_lat.shape[1] - 1
        latent, known = empty(total), connect_mask(total, a_lat.shape[1], b_lat.shape[1] - 1)
        latent[:, : a_lat.shape[1]] = a_lat
        latent[:, a_lat.shape[1] + gap :] = b_lat[:, 1:]

        def finish(frames: np.ndarray) -> np.ndarray:
            middle = frames[len(a_tail) : len(a_tail) + 4 * gap - 1]
            return np.concatenate([first, middle, second])

        return LatentPlan(latent, known, windows(known), fps, finish)

    source = need_video("an input video", request.video)
    fps = float(request.video.fps)
    if task == "edit":
        if not 0.0 < request.strength <= 1.0:
            raise InputError(f"strength {request.strength}: choose a value above 0 and at most 1")
        padded = pad_causal(source)
        init = pipe.encode_frames(padded)
        latent, known = empty(init.shape[1]), text_to_video_mask(init.shape[1])
        return LatentPlan(latent, known, windows(known, start_time=request.strength), fps,
                          lambda f: f[: len(source)], init_latent=init)

    if task == "interpolate":
        factor = int(request.factor)
        if factor < 2 or factor > 16:
            raise InputError(f"factor {factor}: choose an integer from 2 to 16")
        if len(source) < 2:
            raise InputError("interpolation needs a video of at least two frames to make frames between; "
                             "to animate a still image, use generate --image")
        count = (len(source) - 1) * factor + 1
        blended = _blend(source, np.arange(count) / factor)
        init = pipe.encode_frames(pad_causal(blended))
        latent, known = empty(init.shape[1]), fill_mask(init.shape[1], [0])
        latent[:, known] = init[:, known]

        def finish(frames: np.ndarray) -> np.ndarray:
            frames = frames[:count].copy()
            frames[::factor] = source
            return frames

        return LatentPlan(latent, known, windows(known, start_time=0.5), fps * factor, finish, init_latent=init)

    if task == "fill":
        if request.fill_frames is None:
            raise InputError("the fill task needs a frame range (--frames A-B)")
        first, last = request.fill_frames
        if not 0 <= first <= last < len(source):
            raise InputError(f"frames {first}-{last}: the video has frames 0-{len(source) - 1}")
        left, right = max(first - 1, 0), min(last + 1, len(source) - 1)
        padded = pad_causal(source.copy())
        # Start the gap from a cross-fade of its neighbours; the model redraws it with the context around it.
        weights = (np.arange(first, last + 1) - left) / max(1, right - left)
        padded[first : last + 1] = (
            source[left] * (1 - weights[:, None, None, None]) + source[right] * weights[:, None, None, None]
        ).round().astype(np.uint8)
        init = pipe.encode_frames(padded)
        # Latent frames touching the gap are generated; the rest (padding included) are known.
        kept = set(range(len(padded))) - set(range(first, last + 1))
        latent, known = empty(init.shape[1]), fill_mask(init.shape[1], known_latent_indices(kept))
        latent[:, known] = init[:, known]

        def finish(frames: np.ndarray) -> np.ndarray:
            frames = frames[: len(source)].copy()
            keep = np.ones(len(source), bool)
            keep[first : last + 1] = False
            frames[keep] = source[keep]
            return frames

        return LatentPlan(latent, known, windows(known, start_time=0.9), fps, finish, init_latent=init)

    raise InputError(f"unknown task {task!r}")
