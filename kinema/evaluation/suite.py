"""The fixed, versioned list of evaluation cases: a family, a task and a world seed each.

Seeds start at SEED_BASE, far from the seeds training draws, and every case is re-rendered from its seed,
so the suite needs no stored data. Changing a case, a default or a rule below means a new SUITE_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinema.errors import InputError
from kinema.world import FAMILIES, Clip, render_clip

SUITE_VERSION = "kinema-eval-1"
SEED_BASE = 50_000_000
TASKS = ("text", "image", "extend", "interpolate", "fill")
DEFAULT_CASES = 100
MAX_CASES = 10_000
PERTURB = 0.1  # upper bound: ~2 mm and ~0.2% of speed, the "physical variance" of a second take
WORLD_MIN_SIDE = 64  # the world renders at least 64x64; smaller models are scored at this size


@dataclass(frozen=True)
class Case:
    """One evaluation case: which scene, which task, at what size and length."""

    index: int
    family: str
    task: str
    seed: int
    width: int = 128
    height: int = 128
    fps: float = 8.0
    num_frames: int = 17

    @property
    def id(self) -> str:
        return f"{self.index:04d}-{self.family}-{self.task}"

    def render(self, perturb: float = 0.0) -> Clip:
        """The case's simulation, re-rendered deterministically (optionally a perturbed second take)."""
        return render_clip(self.seed, self.family, self.width, self.height, self.fps, num_frames=self.num_frames,
                           perturb=perturb)

    def known_frames(self) -> np.ndarray:
        """(T,) bool: the frames the model is given for this task."""
        known = np.zeros(self.num_frames, bool)
        if self.task == "image":
            known[0] = True
        elif self.task == "extend":
            known[: extend_given(self.num_frames)] = True
        elif self.task == "interpolate":
            known[::2] = True
        elif self.task == "fill":
            first, last = fill_range(self.num_frames)
            known[:] = True
            known[first : last + 1] = False
        return known


def extend_given(num_frames: int) -> int:
    """Frames given to an extension case: about the first half, as 1+4k frames."""
    return 1 + 4 * max(1, (num_frames - 1) // 8)


def fill_range(num_frames: int) -> tuple[int, int]:
    """Inclusive frames an ends-given (fill) case regenerates: the middle half, whole latent frames."""
    first = 1 + 4 * max(1, (num_frames - 1) // 16)
    last = max(first, num_frames - 1 - 4 * max(1, (num_frames - 1) // 16))
    return first, min(last, num_frames - 2)


def build_suite(count: int = DEFAULT_CASES, width: int = 128, height: int = 128, fps: float = 8.0,
                num_frames: int = 17) -> list[Case]:
    """The first `count` cases: families in turn, each family cycling through every task."""
    if not 1 <= count <= MAX_CASES:
        raise InputError(f"--cases {count}: choose from 1 to {MAX_CASES} (the standard suite is {DEFAULT_CASES})")
    if num_frames < 9 or (num_frames - 1) % 4:
        raise InputError(f"{num_frames} frames: evaluation clips need 1+4k frames with k >= 2 (e.g. 17 or 33)")
    width, height = max(width, WORLD_MIN_SIDE), max(height, WORLD_MIN_SIDE)
    cases = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        task = TASKS[(index // len(FAMILIES)) % len(TASKS)]
        cases.append(Case(index, family, task, SEED_BASE + index, width, height, float(fps), num_frames))
    return cases
