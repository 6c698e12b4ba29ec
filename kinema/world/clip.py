"""`render_clip`: plan a scene from a seed, simulate it, render it, and write its captions and ground truth."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from kinema.errors import InputError
from kinema.world.describe import describe, occlusion_events, topple_events
from kinema.world.engine import AMBIENT, DIFFUSE, render, simulate
from kinema.world.families import ALL_FAMILIES, FAMILIES, PLANNERS, perturb_scene
from kinema.world.palette import FLOOR_COLOURS, PALETTE

MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 512, 16
MIN_FPS, MAX_FPS = 1.0, 60.0
MAX_SECONDS, MAX_FRAMES = 300.0, 3600


@dataclass
class Clip:
    """A rendered clip: uint8 frames (T, H, W, 3), captions written from its events, and its ground truth."""

    frames: np.ndarray
    fps: float
    captions: list[str]
    family: str
    truth: dict
    seed: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def check_size(width: int, height: int) -> None:
    """Raise InputError unless width and height are multiples of 16 from 64 to 512."""
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, numbers.Integral) or not MIN_SIDE <= side <= MAX_SIDE or side % SIDE_STEP:
            raise InputError(
                f"{name} {side!r} is not supported: world clips need a multiple of {SIDE_STEP} from "
                f"{MIN_SIDE} to {MAX_SIDE} (e.g. 128x128, 224x128, 128x224)"
            )


def check_family(family: str | None) -> None:
    """Raise InputError unless `family` is None or one of ALL_FAMILIES."""
    if family is not None and family not in ALL_FAMILIES:
        raise InputError(f"unknown scene family {family!r}; choose one of {', '.join(ALL_FAMILIES)}")


def frame_count(fps: float, seconds: float | None, num_frames: int | None) -> int:
    """Frames for a clip given fps and a duration or an explicit count; InputError names the valid range."""
    if not isinstance(fps, numbers.Real) or not MIN_FPS <= fps <= MAX_FPS:
        raise InputError(f"fps {fps!r} is out of range: use {MIN_FPS:g} to {MAX_FPS:g} frames per second")
    if num_frames is not None:
        if not isinstance(num_frames, numbers.Integral) or not 1 <= num_frames <= MAX_FRAMES:
            raise InputError(f"num_frames {num_frames!r} is out of range: use 1 to {MAX_FRAMES} (the model wants 1+4k, e.g. 17 or 33)")
        return int(num_frames)
    if seconds is None:
        raise InputError("give a duration in seconds or an explicit num_frames")
    if not isinstance(seconds, numbers.Real) or not 0 < seconds <= MAX_SECONDS:
        raise InputError(f"duration {seconds!r} s is out of range: use more than 0 and at most {MAX_SECONDS:g} seconds")
    return max(1, round(seconds * fps))


def render_clip(
    seed: int,
    family: str | None = None,
    width: int = 128,
    height: int = 128,
    fps: float = 8.0,
    seconds: float | None = 2.0,
    num_frames: int | None = None,
    perturb: float = 0.0,
) -> Clip:
    """Render one clip; the same arguments give the same clip bit for bit.

    family: one of ALL_FAMILIES, or None to draw one of FAMILIES from the seed.
    num_frames: overrides `seconds` when given.
    perturb: re-run the same scene with initial positions nudged by ~2 cm and speeds by ~2% per unit.
    """
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed {seed!r} must be a non-negative integer")
    check_size(width, height)
    check_family(family)
    if not isinstance(perturb, numbers.Real) or not 0 <= perturb <= 10:
        raise InputError(f"perturb {perturb!r} is out of range: use 0 (none) to 10")
    count = frame_count(fps, seconds, num_frames)
    fps = float(fps)
    plan_rng = np.random.default_rng([int(seed), 0])
    family = family or str(plan_rng.choice(FAMILIES))
    span = min(max((count - 1) / fps, 1.0), 4.0)  # scenes are paced for the clip's length, within 1-4 s
    scene = PLANNERS[family](plan_rng, span)
    if perturb:
        perturb_scene(scene, np.random.default_rng([int(seed), 1]), float(perturb))

    sim = simulate(scene, count, fps)
    frames, truth_frames, cameras = render(scene, sim, width, height, fps)
    truth = {
        "seed": int(seed),
        "family": family,
        "perturb": float(perturb),
        "width": width,
        "height": height,
        "fps": fps,
        "num_frames": count,
        "seconds": count / fps,
        "floor": {"name": scene.floor, "rgb": list(FLOOR_COLOURS[scene.floor])},
        "light": {"direction": list(scene.light), "ambient": AMBIENT, "diffuse": DIFFUSE},
        "camera": {"motion": scene.camera.kind, "frames": cameras},
        "objects": [
            {
                "id": b.id, "shape": b.shape, "colour": b.colour, "rgb": list(PALETTE[b.colour]), "size": b.size,
                "role": b.role, "paint": b.paint,
                "initial_position": [round(float(v), 4) for v in b.position],
                "initial_velocity": [round(float(v), 4) for v in b.velocity],
            }
            for b in scene.bodies
        ],
        "frames": truth_frames,
        "decals": sim.decals,
    }
    topples, tower_down = topple_events(scene, sim)
    tracked = [b.id for b in scene.bodies if b.role == "object"]
    events = sim.events + topples + occlusion_events(truth, tracked)
    truth["events"] = sorted(events, key=lambda e: (e["frame"], e.get("time", 0.0), e["type"]))
    captions, facts = describe(scene, sim, truth | {"tower_down": tower_down}, np.random.default_rng([int(seed), 2]))
    facts["tower_down"] = tower_down if topples else None
    truth["facts"] = facts
    return Clip(frames, fps, captions, family, truth, int(seed))
