"""Scene families: each plans a scene from a random generator; what happened is read back in `describe`."""

from __future__ import annotations

import math

import numpy as np

from kinema.world.engine import Body, CameraMotion, Scene
from kinema.world.palette import FLOOR_COLOURS, PALETTE, SHAPES, SIZE_METRES, SIZES

FAMILIES = ("direction", "gravity", "causality", "lasting_change", "permanence", "attributes", "camera")
# Families that can be named (training mixes, `kinema world render --family`) but are not drawn by default,
# so that the default stream and the evaluation's cases stay what they were.
EXTRA_FAMILIES = ("heading",)
ALL_FAMILIES = FAMILIES + EXTRA_FAMILIES
CAMERA_MOTIONS = ("static", "pan_left", "pan_right", "zoom_in", "zoom_out", "orbit_left", "orbit_right")
G = 9.81


def _colours(rng: np.random.Generator, count: int) -> list[str]:
    return [str(c) for c in rng.choice(list(PALETTE), size=count, replace=False)]


def _light(rng: np.random.Generator) -> tuple[float, float, float]:
    azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(35), math.radians(75))
    return (
        round(math.cos(elevation) * math.cos(azimuth), 4),
        round(math.cos(elevation) * math.sin(azimuth), 4),
        round(math.sin(elevation), 4),
    )


def _mover(name: str, shape: str, colour: str, size: str, start, heading, distance: float, seconds: float) -> Body:
    """A body on the floor launched along `heading` (unit xy) to cover about `distance` metres in `seconds`."""
    radius = SIZE_METRES[size]
    hx, hy = heading
    if shape == "sphere":
        # rolling from the first step (no slipping phase): v = w x r for the contact point below
        speed = distance / seconds
        return Body(
            name, shape, colour, size, (start[0], start[1], radius), (speed * hx, speed * hy, 0.0),
            (-speed * hy / radius, speed * hx / radius, 0.0), friction=0.6, mass=2.0,
        )
    # sliding: friction chosen so the body stops after `distance` in `seconds` (v0 = 2d/t, mu = v0/(g t))
    speed = 2 * distance / seconds
    return Body(
        name, shape, colour, size, (start[0], start[1], radius), (speed * hx, speed * hy, 0.0),
        friction=speed / (G * seconds), mass=2.0,
    )


def _base(rng: np.random.Generator, family: str, bodies: list[Body], camera: CameraMotion | None = None) -> Scene:
    floor = str(rng.choice(list(FLOOR_COLOURS)))
    return Scene(family, bodies, floor, _light(rng), camera or CameraMotion())


def plan_direction(rng: np.random.Generator, span: float) -> Scene:
    """One object rolls or slides left, right, toward or away from the camera."""
    heading = str(rng.choice(["left", "right", "toward", "away"]))
    shape, size, (colour,) = str(rng.choice(SHAPES)), str(rng.choice(SIZES)), _colours(rng, 1)
    if heading in ("left", "right"):
        sign = 1 if heading == "right" else -1
        start, vector, distance = (-1.1 * sign, rng.uniform(-0.3, 0.4)), (sign, 0.0), 2.2
    else:
        sign = -1 if heading == "toward" else 1
        start, vector, distance = (rng.uniform(-0.5, 0.5), 1.5 if sign < 0 else -0.7), (0.0, sign), 2.0
    return _base(rng, "direction", [_mover("obj0", shape, colour, size, start, vector, distance, 0.85 * span)])


def plan_heading(rng: np.random.Generator, span: float) -> Scene:
    """One object starts near the middle and rolls or slides a short way left or right.

    In "direction" (and every other family with a mover) an object that goes right starts on the left, so
    by the time a sample's layout shows where the object starts, its direction is settled and the words
    are no longer needed. Here the start says little about the way, so only the words do.
    """
    sign = 1 if rng.random() < 0.5 else -1
    shape, size, (colour,) = str(rng.choice(SHAPES)), str(rng.choice(SIZES)), _colours(rng, 1)
    start = (rng.uniform(-0.35, 0.35), rng.uniform(-0.3, 0.4))
    distance = rng.uniform(0.7, 0.9)
    return _base(rng, "heading", [_mover("obj0", shape, colour, size, start, (sign, 0.0), distance, 0.85 * span)])


def plan_gravity(rng: np.random.Generator, span: float) -> Scene:
    """One or two objects dropped from rest; spheres bounce with decaying height."""
    count = int(rng.integers(1, 3))
    colours = _colours(rng, count)
    xs = [0.0] if count == 1 else [-0.6, 0.6]
    bodies = []
    for i, (x, colour) in enumerate(zip(xs, colours, strict=True)):
        shape = str(rng.choice(["sphere", "sphere", "cube", "cylinder"]))
        size = str(rng.choice(SIZES))
        height = rng.uniform(0.7, 1.2) + SIZE_METRES[size]
        restitution = 0.85 if shape == "sphere" else 0.6
        bodies.append(Body(f"obj{i}", shape, colour, size, (x + rng.uniform(-0.15, 0.15), rng.uniform(-0.2, 0.3), height), restitution=restitution))
    return _base(rng, "gravity", bodies, CameraMotion(target=(0.0, 0.0, 0.6)))


def plan_causality(rng: np.random.Generator, span: float) -> Scene:
    """A rolling ball hits a resting object, which moves only after contact, in the push direction."""
    sign = 1 if rng.random() < 0.5 else -1
    colours = _colours(rng, 2)
    size_a, size_b = str(rng.choice(SIZES)), str(rng.choice(SIZES))
    y = rng.uniform(-0.2, 0.3)
    x_b = 0.15 * sign
    gap = abs(x_b + 1.2 * sign) - SIZE_METRES[size_a] - SIZE_METRES[size_b]
    mover = _mover("obj0", "sphere", colours[0], size_a, (-1.2 * sign, y), (sign, 0.0), gap, 0.35 * span)
    mover.mass = 3.0
    shape_b = str(rng.choice(SHAPES))
    target = Body("obj1", shape_b, colours[1], size_b, (x_b, y, SIZE_METRES[size_b]), friction=0.25 if shape_b != "sphere" else 0.6, mass=1.0)
    return _base(rng, "causality", [mover, target])


def plan_lasting_change(rng: np.random.Generator, span: float) -> Scene:
    """A paint trail left behind a moving object, or a tower of blocks knocked over that stays down."""
    if rng.random() < 0.5:
        scene = plan_direction(rng, span)
        scene.family = "lasting_change"
        body = scene.bodies[0]
        body.paint = str(rng.choice([c for c in PALETTE if c != body.colour]))
        return scene
    sign = 1 if rng.random() < 0.5 else -1
    colours = _colours(rng, 2)
    levels = int(rng.integers(3, 5))
    half = 0.16
    x_t = 0.35 * sign
    blocks = [
        Body(f"block{i}", "cube", colours[1], "small", (x_t, 0.0, half * (2 * i + 1)), role="block",
             half_extents=(half, half, half), mass=0.4, friction=0.6)
        for i in range(levels)
    ]
    gap = abs(x_t + 1.2 * sign) - SIZE_METRES["large"] - half
    mover = _mover("obj0", "sphere", colours[0], "large", (-1.2 * sign, 0.0), (sign, 0.0), gap, 0.3 * span)
    mover.mass = 4.0
    return _base(rng, "lasting_change", [mover, *blocks], CameraMotion(target=(0.0, 0.0, 0.45)))


def plan_permanence(rng: np.random.Generator, span: float) -> Scene:
    """An object passes behind a wall nearer the camera and comes out on the other side."""
    sign = 1 if rng.random() < 0.5 else -1
    colours = _colours(rng, 2)
    shape = str(rng.choice(["sphere", "sphere", "cube"]))
    mover = _mover("obj0", shape, colours[0], "small", (-1.3 * sign, 0.7), (sign, 0.0), 2.6, 0.85 * span)
    if shape != "sphere":
        # near-frictionless slide keeps the speed so the object cannot stop out of sight
        mover.friction = 0.02
        mover.velocity = (sign * 2.6 / (0.85 * span), 0.0, 0.0)
    wall = Body("wall", "wall", colours[1], "large", (rng.uniform(-0.1, 0.1), -0.4, 0.5), role="occluder", half_extents=(0.45, 0.08, 0.5))
    return _base(rng, "permanence", [mover, wall])


def plan_attributes(rng: np.random.Generator, span: float) -> Scene:
    """One to four resting objects of named colours, shapes and sizes."""
    count = int(rng.integers(1, 5))
    colours = _colours(rng, count)
    xs = [0.0] if count == 1 else np.linspace(-0.95, 0.95, count)
    bodies = []
    for i, (x, colour) in enumerate(zip(xs, colours, strict=True)):
        shape, size = str(rng.choice(SHAPES)), str(rng.choice(SIZES))
        y = rng.uniform(-0.3, 0.4)
        bodies.append(Body(f"obj{i}", shape, colour, size, (float(x), y, SIZE_METRES[size])))
    return _base(rng, "attributes", bodies)


def plan_camera(rng: np.random.Generator, span: float) -> Scene:
    """Resting objects seen by a camera that stays, pans, zooms or orbits."""
    scene = plan_attributes(rng, span)
    scene.family = "camera"
    kind = str(rng.choice(CAMERA_MOTIONS))
    camera = CameraMotion(kind=kind)
    if kind.startswith("pan"):
        camera.amount = 18.0
    elif kind.startswith("orbit"):
        camera.amount = 40.0
    elif kind == "zoom_in":
        camera.amount = 24.0
    elif kind == "zoom_out":
        camera.fov, camera.amount = 26.0, 44.0
    scene.camera = camera
    return scene


PLANNERS = {
    "direction": plan_direction,
    "heading": plan_heading,
    "gravity": plan_gravity,
    "causality": plan_causality,
    "lasting_change": plan_lasting_change,
    "permanence": plan_permanence,
    "attributes": plan_attributes,
    "camera": plan_camera,
}


def perturb_scene(scene: Scene, rng: np.random.Generator, amount: float) -> None:
    """Nudge initial positions by ~2 cm and speeds by ~2% per unit of `amount`, in place."""
    for body in scene.bodies:
        if body.role == "occluder":
            continue
        dx, dy = rng.normal(0.0, 0.02 * amount, size=2)
        body.position = (body.position[0] + dx, body.position[1] + dy, body.position[2])
        scale = 1.0 + rng.normal(0.0, 0.02 * amount)
        body.velocity = tuple(v * scale for v in body.velocity)
        body.angular_velocity = tuple(w * scale for w in body.angular_velocity)
