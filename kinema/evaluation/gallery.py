"""The README gallery's prompts, and a check of the gallery criterion that reads any clip by colour.

The shipped model's quality bar is that most gallery samples "show the named colours moving the named
way". Judged by eye that is a handful of GIFs; `check_clip` reads the same thing from the pixels with the
benchmark's analyzer, so that many seeds per prompt can be counted and two checkpoints compared:

- every named colour is seen in at least `PRESENCE` of the frames (an object that fades or breaks up
  fails), and
- every named motion holds between the first and last frames the colour is seen in: left and right by the
  benchmark's lateral margin, down by a tenth of the frame height at the lowest point (a drop that bounces
  still counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kinema.evaluation.analyzer import Track, analyze
from kinema.evaluation.metrics import motion_matches

PRESENCE = 0.75  # share of frames each named colour must be seen in
DROP_MARGIN = 0.10  # of the frame height: how far below its first position a dropped object must come


@dataclass(frozen=True)
class GalleryPrompt:
    name: str
    prompt: str
    colours: tuple[str, ...]
    motions: tuple[tuple[str, str], ...] = ()  # (colour, "left" | "right" | "down")


GALLERY: tuple[GalleryPrompt, ...] = (
    GalleryPrompt("direction", "a red sphere rolls from left to right", ("red",), (("red", "right"),)),
    GalleryPrompt("direction-left", "a blue cube slides from right to left", ("blue",), (("blue", "left"),)),
    GalleryPrompt("colours", "a yellow sphere and a green cube", ("yellow", "green")),
    GalleryPrompt(
        "collision",
        "a red sphere rolls from left to right and hits a blue cube, which slides to the right",
        ("red", "blue"),
        (("red", "right"), ("blue", "right")),
    ),
    GalleryPrompt("drop", "a purple ball falls and bounces on the floor", ("purple",), (("purple", "down"),)),
)

MOTION_WORDS = ("left", "right", "down")

# Prompts that differ only in their direction word, for `mirror_check`: (rightward, leftward, colour).
MIRRORS: tuple[tuple[str, str, str], ...] = (
    ("a red sphere rolls from left to right", "a red sphere rolls from right to left", "red"),
    ("a blue cube slides to the right", "a blue cube slides to the left", "blue"),
)


def _seen(track: Track) -> np.ndarray | None:
    """The frames a track is seen in, or None when they are fewer than two (no motion to read)."""
    seen = np.flatnonzero(track.present)
    return seen if len(seen) >= 2 else None


def _motion(word: str, track: Track, width: int, height: int) -> bool:
    seen = _seen(track)
    if seen is None:
        return False
    first, last = int(seen[0]), int(seen[-1])
    if word == "down":  # image y grows downwards
        return float(np.nanmax(track.centroid[seen, 1]) - track.centroid[first, 1]) >= DROP_MARGIN * height
    return motion_matches(word, track, first, last, width) == "hit"


def check_clip(frames: np.ndarray, item: GalleryPrompt) -> dict:
    """Whether uint8 frames (T, H, W, 3) show `item`'s colours throughout, moving the named way."""
    for _, word in item.motions:
        if word not in MOTION_WORDS:
            raise ValueError(f"motion {word!r}: use one of {', '.join(MOTION_WORDS)}")
    analysis = analyze(frames)
    width, height = analysis.size
    seen = {c: float(analysis.present(c).mean()) for c in item.colours}
    moves = {f"{c} {w}": _motion(w, analysis.tracks[c], width, height) for c, w in item.motions}
    colours_ok = all(share >= PRESENCE for share in seen.values())
    return {"colours": colours_ok, "motion": all(moves.values()), "passed": colours_ok and all(moves.values()),
            "seen": seen, "moves": moves}


def check_gallery(generate: Callable[[str, int], np.ndarray], seeds: Sequence[int],
                  items: Sequence[GalleryPrompt] = GALLERY,
                  progress: Callable[[str, int, dict], None] | None = None) -> dict:
    """Generate every prompt at every seed with `generate(prompt, seed) -> frames` and check each clip.

    Returns per-prompt pass counts and the share of all samples that pass.
    """
    rows, passed = [], 0
    for item in items:
        results = []
        for seed in seeds:
            result = check_clip(generate(item.prompt, seed), item)
            results.append(result)
            if progress is not None:
                progress(item.name, seed, result)
        count = sum(r["passed"] for r in results)
        passed += count
        rows.append({"name": item.name, "prompt": item.prompt, "passed": count, "samples": len(results),
                     "colours": sum(r["colours"] for r in results), "motion": sum(r["motion"] for r in results)})
    total = len(items) * len(seeds)
    return {"rows": rows, "passed": passed, "samples": total, "share": passed / total if total else 0.0}


def lateral_shift(frames: np.ndarray, colour: str) -> float | None:
    """How far `colour` moves sideways between the first and last frames it is seen in, as a share of the
    width (positive: to the right); None when it is seen in fewer than two frames."""
    analysis = analyze(frames)
    track = analysis.tracks[colour]
    seen = _seen(track)
    if seen is None:
        return None
    return float(track.centroid[seen[-1], 0] - track.centroid[seen[0], 0]) / analysis.size[0]


def mirror_check(generate: Callable[[str, int], np.ndarray], seeds: Sequence[int],
                 pairs: Sequence[tuple[str, str, str]] = MIRRORS) -> dict:
    """Whether the prompt or the noise decides the direction: each pair of prompts that differ only in
    "right"/"left" is generated at the same seeds. A seed *follows* the prompts when the colour goes right
    for the first and left for the second; it goes the *same way* for both when the words changed nothing.
    """
    rows = []
    for right, left, colour in pairs:
        follows = same = measured = 0
        for seed in seeds:
            a, b = lateral_shift(generate(right, seed), colour), lateral_shift(generate(left, seed), colour)
            if a is None or b is None:
                continue
            measured += 1
            follows += a > 0 > b
            same += (a > 0) == (b > 0)
        rows.append({"right": right, "left": left, "seeds": len(seeds), "measured": measured,
                     "follows": follows, "same_way": same})
    return {"rows": rows, "follows": sum(r["follows"] for r in rows), "same_way": sum(r["same_way"] for r in rows),
            "measured": sum(r["measured"] for r in rows)}


def mirrored_words(caption: str) -> str:
    """The caption with "right" and "left" swapped (both words, wherever they appear)."""
    return " ".join({"right": "left", "left": "right"}.get(word, word) for word in caption.split(" "))


def word_sensitivity(pipe, clips: Sequence[tuple[np.ndarray, str]], times: Sequence[float] = (1.0, 0.9),
                     first_frame: bool = False, seed: int = 0) -> list[dict]:
    """How much the transformer's clean estimate moves when only "right" and "left" are swapped.

    Each clip (uint8 frames, its caption) is encoded, noised to each time t with one noise draw per clip,
    and the clean estimate x0 = x_t - t v is read for the caption and for its mirror, without guidance.
    Per t: `change`, the root mean square of the difference between the two estimates, and `error`, that of
    the caption's estimate against the clip (both on unit-scale latents, over the frames that are not
    given). With `first_frame` the first latent frame is given, as in image-to-video, where the start is
    known and only the words can say which way an object goes. A model that has learned the words moves
    its estimate by a good part of its error near t = 1; one that has not barely moves it at all.
    """
    import torch

    from kinema.conditioning import image_mask, text_to_video_mask

    latents = [pipe.encode_frames(frames) for frames, _ in clips]
    generator = torch.Generator().manual_seed(seed)
    noises = [torch.randn(x0.shape, generator=generator) for x0 in latents]
    rows = []
    for t in times:
        changes, errors = [], []
        for x0, noise, (_, caption) in zip(latents, noises, clips, strict=True):
            frames = image_mask(x0.shape[1]) if first_frame else text_to_video_mask(x0.shape[1])
            known = frames.float().view(1, 1, -1, 1, 1).expand(1, 1, *x0.shape[1:])
            x_t = torch.where(known[0] > 0, x0, (1 - t) * x0 + t * noise)
            estimates = []
            for text in (caption, mirrored_words(caption)):
                states, mask = pipe.encode_text(text)
                with torch.no_grad():
                    v = pipe.dit(x_t[None], torch.tensor([float(t)]), states, mask, x0[None] * known, known).float()[0]
                estimates.append(x_t - t * v)
            unknown = slice(1, None) if first_frame else slice(None)
            changes.append(float((estimates[0] - estimates[1])[:, unknown].pow(2).mean().sqrt()))
            errors.append(float((estimates[0] - x0)[:, unknown].pow(2).mean().sqrt()))
        rows.append({"t": float(t), "change": float(np.mean(changes)), "error": float(np.mean(errors))})
    return rows
