"""Contact sheets, PNG strips and GIFs for docs and reports."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def _pick(frames: np.ndarray, count: int) -> np.ndarray:
    count = max(1, min(count, len(frames)))
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def contact_sheet(clips: list[np.ndarray], frames_per_clip: int = 6, gap: int = 2) -> np.ndarray:
    """One row per clip, `frames_per_clip` evenly spaced frames per row; returns uint8 (H, W, 3)."""
    rows = [_pick(c, frames_per_clip) for c in clips]
    height = max(r.shape[1] for r in rows)
    width = max(r.shape[0] * (r.shape[2] + gap) for r in rows) - gap
    sheet = np.full((len(rows) * (height + gap) - gap, width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        y = i * (height + gap)
        for j, frame in enumerate(row):
            x = j * (frame.shape[1] + gap)
            sheet[y : y + frame.shape[0], x : x + frame.shape[1]] = frame
    return sheet


def save_strip(path: str | os.PathLike, frames: np.ndarray, count: int = 8) -> Path:
    """Save `count` evenly spaced frames side by side as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet([frames], count)).save(path)
    return path


def save_gif(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Save frames as a looping GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path
