"""Simulate a scene with PyBullet, then render the recorded poses with its TinyRenderer.

Simulation and rendering are two passes: the physics runs first at 240 Hz and records every body's pose at
each frame time and the events between frames (contacts, bounces, paint marks); the renderer then poses the
bodies frame by frame. Rendering from recorded poses lets the ground-truth pass move occluders away to
count an object's unoccluded pixels without disturbing the physics.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from kinema.world.palette import FLOOR_COLOURS, PALETTE, SIZE_METRES, rgba


@contextlib.contextmanager
def _quiet():
    """Silence C-level stdout and stderr: pybullet prints its build time when imported and connected."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # anything still in C's buffers goes to /dev/null
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


with _quiet():
    import pybullet as p

PHYSICS_HZ = 240
FLOOR_HALF = 30.0
HIDDEN = (0.0, 0.0, -50.0)  # where bodies go while another one is rendered alone
AMBIENT, DIFFUSE = 0.7, 0.3
PAINT_SPACING = 0.09  # metres between paint decals
PAINT_RADIUS = 0.12


@dataclass
class Body:
    """One rigid body of a scene, as planned."""

    id: str
    shape: str  # sphere | cube | cylinder | wall
    colour: str
    size: str = "small"
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    role: str = "object"  # object | occluder | block
    mass: float = 1.0
    friction: float = 0.5
    rolling_friction: float = 0.0005
    restitution: float = 0.1
    half_extents: tuple[float, float, float] | None = None  # walls and blocks; else from size
    paint: str | None = None  # colour name of the trail the body leaves on the floor

    @property
    def radius(self) -> float:
        """Radius (sphere, cylinder) or half edge (cube) in metres."""
        return SIZE_METRES[self.size]

    @property
    def half_height(self) -> float:
        """Height of the centre above the floor when resting."""
        if self.half_extents is not None:
            return self.half_extents[2]
        return self.radius


@dataclass
class CameraMotion:
    """A camera path over normalised time u in [0, 1]."""

    kind: str = "static"  # static | pan_left | pan_right | zoom_in | zoom_out | orbit_left | orbit_right
    eye: tuple[float, float, float] = (0.0, -3.6, 1.9)
    target: tuple[float, float, float] = (0.0, 0.0, 0.25)
    fov: float = 40.0  # degrees across the shorter image side
    amount: float = 0.0  # degrees of pan or orbit, or the end fov of a zoom

    def at(self, u: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(eye, target, fov) at normalised time u."""
        s = u * u * (3.0 - 2.0 * u)  # smoothstep: starts and stops gently
        eye, target, fov = np.array(self.eye), np.array(self.target), self.fov
        if self.kind.startswith("pan"):
            # turning left rotates the look direction counter-clockwise seen from above
            angle = math.radians(self.amount) * s * (1 if self.kind == "pan_left" else -1)
            target = eye + _rotate_z(target - eye, angle)
        elif self.kind.startswith("orbit"):
            # the camera travels to its own left (clockwise seen from above) or right around the target
            angle = math.radians(self.amount) * s * (-1 if self.kind == "orbit_left" else 1)
            eye = target + _rotate_z(eye - target, angle)
        elif self.kind.startswith("zoom"):
            fov = self.fov + (self.amount - self.fov) * s
        return eye, target, fov


def _rotate_z(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1], vector[2]])


@dataclass
class Scene:
    """A planned scene: bodies, floor, light and camera path."""

    family: str
    bodies: list[Body]
    floor: str
    light: tuple[float, float, float]
    camera: CameraMotion = field(default_factory=CameraMotion)


@dataclass
class Simulation:
    """What the physics did: poses per frame, events, paint decals."""

    positions: dict[str, np.ndarray]  # id -> (T, 3)
    orientations: dict[str, np.ndarray]  # id -> (T, 4) quaternions
    events: list[dict]
    decals: list[dict]  # {"frame", "position", "colour"}
    bounce_peaks: dict[str, list[float]]  # id -> apex heights of the bottom above the floor, in order
    uids: dict[str, int]  # id -> PyBullet body id, still alive for the render pass


_CLIENT: tuple[int, int] | None = None  # (pid, client id): one physics client per process


def client() -> int:
    """This process's PyBullet client, connected once and reused for every clip."""
    global _CLIENT
    if _CLIENT is None or _CLIENT[0] != os.getpid():
        with _quiet():
            _CLIENT = (os.getpid(), p.connect(p.DIRECT))
    return _CLIENT[1]


def frame_of(time: float, fps: float) -> int:
    """The first frame whose time is at or after `time`."""
    return int(math.ceil(time * fps - 1e-6))


def _create(body: Body, cid: int) -> int:
    colour = rgba(PALETTE[body.colour])
    if body.shape == "sphere":
        col = p.createCollisionShape(p.GEOM_SPHERE, radius=body.radius, physicsClientId=cid)
        vis = p.createVisualShape(p.GEOM_SPHERE, radius=body.radius, rgbaColor=colour, physicsClientId=cid)
    elif body.shape == "cylinder":
        height = 2 * body.radius
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=body.radius, height=height, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=body.radius, length=height, rgbaColor=colour, physicsClientId=cid
        )
    else:
        half = body.half_extents or (body.radius,) * 3
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=colour, physicsClientId=cid)
    mass = 0.0 if body.role == "occluder" else body.mass
    uid = p.createMultiBody(mass, col, vis, basePosition=body.position, physicsClientId=cid)
    p.changeDynamics(
        uid,
        -1,
        lateralFriction=body.friction,
        rollingFriction=body.rolling_friction,
        spinningFriction=body.rolling_friction,
        restitution=body.restitution,
        linearDamping=0.0,
        angularDamping=0.0,
        physicsClientId=cid,
    )
    if mass > 0:
        p.resetBaseVelocity(uid, body.velocity, body.angular_velocity, physicsClientId=cid)
    return uid


def _build(scene: Scene, cid: int) -> tuple[int, dict[str, int]]:
    p.resetSimulation(physicsClientId=cid)
    p.setPhysicsEngineParameter(
        fixedTimeStep=1.0 / PHYSICS_HZ, deterministicOverlappingPairs=1, physicsClientId=cid
    )
    p.setGravity(0, 0, -9.81, physicsClientId=cid)
    half = [FLOOR_HALF, FLOOR_HALF, 0.05]
    floor = p.createMultiBody(
        0,
        p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid),
        p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba(FLOOR_COLOURS[scene.floor]), physicsClientId=cid),
        basePosition=[0, 0, -0.05],
        physicsClientId=cid,
    )
    # Bullet multiplies the two bodies' coefficients: a floor of 1.0 makes each body's friction the effective one
    p.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.9, physicsClientId=cid)
    return floor, {body.id: _create(body, cid) for body in scene.bodies}


def simulate(scene: Scene, num_frames: int, fps: float) -> Simulation:
    """Run the physics and record poses at each frame time and the events in between."""
    cid = client()
    floor, uids = _build(scene, cid)
    names = {uid: name for name, uid in uids.items()}
    positions = {name: np.zeros((num_frames, 3)) for name in uids}
    orientations = {name: np.zeros((num_frames, 4)) for name in uids}
    events: list[dict] = []
    decals: list[dict] = []
    touching: set[tuple[str, str]] = set()
    on_floor = {name: True for name in uids}
    fall_speed = {name: 0.0 for name in uids}
    apex = {name: body.position[2] - body.half_height for name, body in zip(uids, scene.bodies, strict=True)}
    peaks: dict[str, list[float]] = {name: [] for name in uids}
    bodies = {body.id: body for body in scene.bodies}
    last_mark: dict[str, np.ndarray] = {}

    def record(frame: int) -> None:
        for name, uid in uids.items():
            pos, orn = p.getBasePositionAndOrientation(uid, physicsClientId=cid)
            positions[name][frame], orientations[name][frame] = pos, orn

    record(0)
    for frame in range(1, num_frames):
        for step in range(round((frame - 1) * PHYSICS_HZ / fps) + 1, round(frame * PHYSICS_HZ / fps) + 1):
            p.stepSimulation(physicsClientId=cid)
            time = step / PHYSICS_HZ
            contacts = set()
            floor_contacts = set()
            for point in p.getContactPoints(physicsClientId=cid):
                a, b = point[1], point[2]
                if floor in (a, b):
                    floor_contacts.add(names.get(b if a == floor else a))
                elif a in names and b in names:
                    contacts.add(tuple(sorted((names[a], names[b]))))
            for pair in sorted(contacts - touching):
                if not any(e["type"] == "contact" and e["objects"] == list(pair) for e in events):
                    events.append({"type": "contact", "frame": frame_of(time, fps), "time": round(time, 4), "objects": list(pair)})
            touching = contacts
            for name, uid in uids.items():
                body = bodies[name]
                if body.role == "occluder":
                    continue
                pos, _ = p.getBasePositionAndOrientation(uid, physicsClientId=cid)
                velocity, _ = p.getBaseVelocity(uid, physicsClientId=cid)
                apex[name] = max(apex[name], pos[2] - body.half_height)
                landed = name in floor_contacts
                if landed and not on_floor[name] and fall_speed[name] > 0.6 and body.role == "object":
                    events.append({"type": "bounce", "frame": frame_of(time, fps), "time": round(time, 4), "object": name, "speed": round(fall_speed[name], 3)})
                    peaks[name].append(round(apex[name], 4))
                    apex[name] = 0.0
                on_floor[name] = landed
                fall_speed[name] = -velocity[2]
                if body.paint and landed and math.hypot(velocity[0], velocity[1]) > 0.15:
                    here = np.array([pos[0], pos[1]])
                    if name not in last_mark or np.linalg.norm(here - last_mark[name]) >= PAINT_SPACING:
                        last_mark[name] = here
                        decals.append({"frame": frame_of(time, fps), "position": [round(float(v), 4) for v in here], "colour": body.paint, "object": name})
        record(frame)
    if decals:
        first = decals[0]
        events.append({"type": "mark_made", "frame": first["frame"], "time": round(first["frame"] / fps, 4), "object": first["object"], "colour": first["colour"], "decals": len(decals)})
    events.sort(key=lambda e: (e["frame"], e.get("time", 0.0)))
    return Simulation(positions, orientations, events, decals, peaks, uids)


def camera_matrices(
    camera: CameraMotion, u: float, width: int, height: int
) -> tuple[list[float], list[float], dict]:
    """PyBullet view and projection matrices (column-major) and the camera as a JSON-able dict."""
    eye, target, fov = camera.at(u)
    aspect = width / height
    # `fov` spans the shorter side, so portrait frames keep the same horizontal view as square ones
    vertical = fov if aspect >= 1 else math.degrees(2 * math.atan(math.tan(math.radians(fov) / 2) / aspect))
    view = p.computeViewMatrix(eye.tolist(), target.tolist(), [0, 0, 1])
    proj = p.computeProjectionMatrixFOV(vertical, aspect, 0.1, 60.0)
    info = {"eye": [round(float(v), 4) for v in eye], "target": [round(float(v), 4) for v in target], "fov": round(fov, 3), "vertical_fov": round(vertical, 3)}
    return view, proj, info


def project(points: np.ndarray, view: list[float], proj: list[float], width: int, height: int) -> np.ndarray:
    """World points (N, 3) -> image (N, 3): x, y in pixels (origin top left) and depth in metres."""
    view_m = np.asarray(view).reshape(4, 4).T
    proj_m = np.asarray(proj).reshape(4, 4).T
    homo = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    cam = homo @ view_m.T
    clip = cam @ proj_m.T
    ndc = clip[:, :3] / clip[:, 3:4]
    x = (ndc[:, 0] + 1) * 0.5 * width
    y = (1 - ndc[:, 1]) * 0.5 * height
    return np.stack([x, y, -cam[:, 2]], axis=1)


def _box(aabb, view, proj, width, height) -> np.ndarray:
    lo, hi = np.array(aabb[0]), np.array(aabb[1])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    image = project(corners, view, proj, width, height)
    return np.concatenate([image[:, :2].min(0), image[:, :2].max(0), [image[:, 2].min(), image[:, 2].max()]])


def _may_hide(front: np.ndarray, back: np.ndarray) -> bool:
    """Whether `front` can cover part of `back`: image boxes overlap and part of it is nearer the camera."""
    overlap = front[0] < back[2] and back[0] < front[2] and front[1] < back[3] and back[1] < front[3]
    return bool(overlap and front[4] < back[5])


def render(scene: Scene, sim: Simulation, width: int, height: int, fps: float) -> tuple[np.ndarray, list[dict], list[dict]]:
    """Render each recorded frame once; return frames (T, H, W, 3), per-frame truth and cameras."""
    cid = client()
    uids = sim.uids
    num_frames = len(next(iter(sim.positions.values()))) if sim.positions else 1
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    truth_frames: list[dict] = []
    cameras: list[dict] = []
    light = list(scene.light)
    decal_visual = {}
    pending = list(sim.decals)
    decal_ids: list[int] = []
    duration = (num_frames - 1) / fps

    def shoot(view, proj, width=width, height=height):
        _, _, rgb, _, seg = p.getCameraImage(
            width, height, view, proj, renderer=p.ER_TINY_RENDERER, shadow=0, lightDirection=light,
            lightColor=[1, 1, 1], lightAmbientCoeff=AMBIENT, lightDiffuseCoeff=DIFFUSE,
            lightSpecularCoeff=0.0, physicsClientId=cid,
        )
        return np.asarray(rgb, np.uint8).reshape(height, width, 4)[:, :, :3], np.asarray(seg).reshape(height, width)

    for k in range(num_frames):
        for name, uid in uids.items():
            p.resetBasePositionAndOrientation(uid, sim.positions[name][k], sim.orientations[name][k], physicsClientId=cid)
        while pending and pending[0]["frame"] <= k:
            decal = pending.pop(0)
            if decal["colour"] not in decal_visual:
                decal_visual[decal["colour"]] = p.createVisualShape(
                    p.GEOM_CYLINDER, radius=PAINT_RADIUS, length=0.004, rgbaColor=rgba(PALETTE[decal["colour"]]), physicsClientId=cid
                )
            decal_ids.append(
                p.createMultiBody(0, -1, decal_visual[decal["colour"]], basePosition=[*decal["position"], 0.002], physicsClientId=cid)
            )
        u = (k / fps) / duration if duration > 0 else 0.0
        view, proj, info = camera_matrices(scene.camera, u, width, height)
        cameras.append(info)
        rgb, seg = shoot(view, proj)
        frames[k] = rgb
        counts = np.bincount(seg.ravel() + 1, minlength=max(uids.values(), default=0) + 2)
        boxes = {name: _box(p.getAABB(uid, physicsClientId=cid), view, proj, width, height) for name, uid in uids.items()}
        objects = {}
        for body in scene.bodies:
            name, uid = body.id, uids[body.id]
            pixels = int(counts[uid + 1]) if uid + 1 < len(counts) else 0
            alone = pixels
            if any(_may_hide(boxes[other], boxes[name]) for other in uids if other != name):
                alone = _alone_pixels(name, uids, sim, k, view, proj, boxes[name], (width, height), shoot, cid)
            centre = project(sim.positions[name][k][None], view, proj, width, height)[0]
            ys, xs = np.nonzero(seg == uid)
            entry = {
                "centre": [round(float(centre[0]), 2), round(float(centre[1]), 2)],
                "depth": round(float(centre[2]), 3),
                "position": [round(float(v), 4) for v in sim.positions[name][k]],
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if pixels else None,
                "pixels": pixels,
                "visible": round(pixels / alone, 4) if alone else 0.0,
                "in_frame": alone > 0,
            }
            objects[name] = entry
        marks = int(sum(counts[d + 1] for d in decal_ids if d + 1 < len(counts)))
        truth_frames.append({"objects": objects, "mark_pixels": marks})
    return frames, truth_frames, cameras


def _window(proj: list[float], box: np.ndarray, size: tuple[int, int]) -> tuple[list[float], int, int] | None:
    """A projection that renders only the pixel window around `box`, on the same pixel grid as `proj`."""
    width, height = size
    x0, y0 = max(0, int(math.floor(box[0])) - 1), max(0, int(math.floor(box[1])) - 1)
    x1, y1 = min(width, int(math.ceil(box[2])) + 1), min(height, int(math.ceil(box[3])) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    w, h = x1 - x0, y1 - y0
    # scale and shift normalised device coordinates so the window fills the new viewport
    crop = np.array([
        [width / w, 0, 0, (width - 2 * x0) / w - 1],
        [0, height / h, 0, 1 - (height - 2 * y0) / h],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
    ])
    full = np.asarray(proj).reshape(4, 4).T
    return (crop @ full).T.ravel().tolist(), w, h


def _alone_pixels(name, uids, sim, k, view, proj, box, size, shoot, cid) -> int:
    """Pixels the object would cover with every other body out of the way: its unoccluded footprint."""
    window = _window(proj, box, size)
    if window is None:
        return 0
    for other, uid in uids.items():
        if other != name:
            p.resetBasePositionAndOrientation(uid, HIDDEN, [0, 0, 0, 1], physicsClientId=cid)
    _, seg = shoot(view, *window)
    for other, uid in uids.items():
        if other != name:
            p.resetBasePositionAndOrientation(uid, sim.positions[other][k], sim.orientations[other][k], physicsClientId=cid)
    return int(np.count_nonzero(seg == uids[name]))
