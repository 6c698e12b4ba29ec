"""Read what happened back from the simulation and the rendered truth, and write captions from it.

Captions come from the simulated outcome, never the plan: a ball planned to hit a cube that stops short is
captioned as stopping short. Directions are image-space, as the viewer sees them.
"""

from __future__ import annotations

import math

import numpy as np

from kinema.world.engine import Scene, Simulation

SHAPE_WORDS = {"sphere": ("sphere", "ball"), "cube": ("cube", "block", "box"), "cylinder": ("cylinder",), "wall": ("wall", "screen")}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
TIMES = {1: "once", 2: "twice"}
DIRECTION_WORDS = {
    "right": ("from left to right", "to the right", "across the frame from left to right"),
    "left": ("from right to left", "to the left", "across the frame from right to left"),
    "toward": ("toward the camera", "towards the viewer", "closer to the camera"),
    "away": ("away from the camera", "into the distance", "away from the viewer"),
}
CAMERA_WORDS = {
    "pan_left": ("the camera pans left across", "the view pans to the left over", "a leftward camera pan over"),
    "pan_right": ("the camera pans right across", "the view pans to the right over", "a rightward camera pan over"),
    "zoom_in": ("the camera zooms in on", "a slow zoom in on", "the view closes in on"),
    "zoom_out": ("the camera zooms out from", "a slow zoom out from", "the view pulls back from"),
    "orbit_left": ("the camera circles to the left around", "the camera orbits left around", "an orbiting shot moving left around"),
    "orbit_right": ("the camera circles to the right around", "the camera orbits right around", "an orbiting shot moving right around"),
    "static": ("a still camera looks at", "a static shot of", "a fixed view of"),
}
OCCLUDED_BELOW = 0.5  # visible fraction under which an object counts as hidden


def _tilt(quaternion: np.ndarray) -> float:
    """Angle in degrees between a body's up axis and the world's."""
    x, y, _, _ = quaternion
    return math.degrees(math.acos(max(-1.0, min(1.0, 1 - 2 * (x * x + y * y)))))


def rotation_degrees(sim: Simulation, name: str) -> float:
    """Total angle a body turned through over the clip, summed frame to frame."""
    q = sim.orientations[name]
    dots = np.abs(np.sum(q[1:] * q[:-1], axis=1)).clip(0, 1)
    return float(np.degrees(2 * np.arccos(dots)).sum())


def image_motion(truth: dict, name: str, start: int = 0, end: int | None = None) -> dict:
    """How an object moved on screen between two frames: direction word and sizes in pixels/metres."""
    frames = truth["frames"]
    end = len(frames) - 1 if end is None else end
    a, b = frames[start]["objects"][name], frames[end]["objects"][name]
    dx = b["centre"][0] - a["centre"][0]
    dy = b["centre"][1] - a["centre"][1]
    depth = (a["depth"] + b["depth"]) / 2
    camera = truth["camera"]["frames"][end]
    width, height = truth["width"], truth["height"]
    hfov = camera["vertical_fov"] * (width / height) if width > height else camera["fov"]
    lateral = dx / width * 2 * depth * math.tan(math.radians(hfov) / 2)  # metres across the view
    closer = a["depth"] - b["depth"]
    if max(abs(lateral), abs(closer)) < 0.15:
        word = "still"
    elif abs(lateral) >= abs(closer):
        word = "right" if lateral > 0 else "left"
    else:
        word = "toward" if closer > 0 else "away"
    return {"direction": word, "dx": round(dx, 2), "dy": round(dy, 2), "lateral_m": round(lateral, 3), "closer_m": round(closer, 3)}


def occlusion_events(truth: dict, names: list[str]) -> list[dict]:
    """occlusion_start/end events where an in-frame object's visible fraction crosses OCCLUDED_BELOW."""
    events = []
    for name in names:
        entries = [frame["objects"][name] for frame in truth["frames"]]
        hidden = [e["in_frame"] and e["visible"] < OCCLUDED_BELOW for e in entries]
        for k in range(1, len(entries)):
            if hidden[k] and not hidden[k - 1]:
                events.append({"type": "occlusion_start", "frame": k, "object": name})
            elif hidden[k - 1] and not hidden[k]:
                events.append({"type": "occlusion_end", "frame": k, "object": name})
    return events


def topple_events(scene: Scene, sim: Simulation) -> tuple[list[dict], bool]:
    """A topple event at the first frame a tower block is down; and whether the tower is down at the end."""
    blocks = [b for b in scene.bodies if b.role == "block"]
    if not blocks:
        return [], False
    down = np.zeros(len(sim.positions[blocks[0].id]), bool)
    for block in blocks:
        z = sim.positions[block.id][:, 2]
        tilt = np.array([_tilt(q) for q in sim.orientations[block.id]])
        down |= (z < block.position[2] - block.half_extents[2]) | ((tilt > 35) & (tilt < 145))
    if not down.any():
        return [], False
    frame = int(np.argmax(down))
    return [{"type": "topple", "frame": frame, "objects": [b.id for b in blocks]}], bool(down[-1])


class Writer:
    """Builds phrasings with random synonyms from one generator."""

    def __init__(self, scene: Scene, rng: np.random.Generator):
        self.bodies = {b.id: b for b in scene.bodies}
        self.floor = scene.floor
        self.rng = rng

    def pick(self, options) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def noun(self, name: str, size: bool | None = None) -> str:
        body = self.bodies[name]
        if size is None:
            size = self.rng.random() < 0.5
        words = [body.size] if size and body.role != "occluder" else []
        if body.role == "occluder" and self.rng.random() < 0.5:
            words.append("large")
        words += [body.colour, self.pick(SHAPE_WORDS[body.shape])]
        return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)

    def listing(self, names: list[str], size: bool | None = None) -> str:
        nouns = [self.noun(n, size) for n in names]
        return nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]

    def on_floor(self) -> str:
        return self.pick(("", f" on a {self.floor} floor", f" on a {self.floor} ground"))

    def way(self, direction: str) -> str:
        return self.pick(DIRECTION_WORDS[direction])


def _verb(sim: Simulation, name: str, moving: bool = True) -> str:
    return "rolls" if rotation_degrees(sim, name) > 90 else "slides"


def _moves(writer: Writer, sim: Simulation, truth: dict, name: str, facts: dict) -> str:
    motion = image_motion(truth, name)
    facts.setdefault("motion", {})[name] = motion | {"verb": _verb(sim, name)}
    if motion["direction"] == "still":
        return f"{writer.noun(name)} rests{writer.on_floor()}"
    return f"{writer.noun(name)} {_verb(sim, name)} {writer.way(motion['direction'])}"


def _direction(writer, scene, sim, truth, facts) -> str:
    return _moves(writer, sim, truth, "obj0", facts) + writer.on_floor()


def _gravity(writer, scene, sim, truth, facts) -> str:
    parts = []
    for body in scene.bodies:
        bounces = [e for e in truth["events"] if e["type"] == "bounce" and e["object"] == body.id]
        peaks = sim.bounce_peaks[body.id]
        fell = body.position[2] - sim.positions[body.id][-1][2]
        facts.setdefault("bounces", {})[body.id] = len(bounces)
        noun = writer.noun(body.id)
        if not bounces:
            parts.append(f"{noun} {writer.pick(('falls', 'drops', 'is dropped'))}" if fell > 0.05 else f"{noun} hangs in the air")
            continue
        times = TIMES.get(len(bounces), f"{NUMBERS.get(len(bounces), len(bounces))} times")
        text = f"{noun} {writer.pick(('falls', 'drops'))} to the floor and bounces {times}"
        if len(peaks) >= 3 and all(b < a for a, b in zip(peaks[1:], peaks[2:], strict=False)):
            text += writer.pick((", each bounce lower than the last", ", lower each time", ""))
        parts.append(text)
    return " while ".join(parts) if len(parts) == 2 and writer.rng.random() < 0.5 else " and ".join(parts)


def _hit(writer, scene, sim, truth, facts, target: str, target_noun: str, collective: bool = False) -> tuple[str, dict | None]:
    contact = next((e for e in truth["events"] if e["type"] == "contact" and "obj0" in e["objects"] and target in e["objects"]), None)
    end = contact["frame"] if contact else None
    motion = image_motion(truth, "obj0", 0, end)
    facts.setdefault("motion", {})["obj0"] = motion
    way = writer.way(motion["direction"]) if motion["direction"] != "still" else "forward"
    mover = f"{writer.noun('obj0')} {_verb(sim, 'obj0')} {way}"
    if contact is None:
        return f"{mover} {writer.pick(('toward', 'towards'))} {target_noun}", None
    return f"{mover} and {writer.pick(('hits', 'bumps into', 'strikes'))} {target_noun}", contact


def _causality(writer, scene, sim, truth, facts) -> str:
    text, contact = _hit(writer, scene, sim, truth, facts, "obj1", writer.noun("obj1"))
    if contact is None:
        return text
    pushed = image_motion(truth, "obj1", contact["frame"])
    facts["motion"]["obj1"] = pushed
    if pushed["direction"] == "still":
        return text + writer.pick((", which barely moves", ", which stays put"))
    return text + f", which {_verb(sim, 'obj1')} {writer.way(pushed['direction'])}"


def _lasting_change(writer, scene, sim, truth, facts) -> str:
    if not any(b.role == "block" for b in scene.bodies):
        text = _moves(writer, sim, truth, "obj0", facts)
        marks = truth["frames"][-1]["mark_pixels"]
        if sim.decals and marks > 0:
            paint = scene.bodies[0].paint
            text += writer.pick((f", leaving a {paint} paint trail that stays on the floor",
                                 f" and leaves a {paint} trail behind it", f", painting a {paint} line that remains"))
            return text
        return text + writer.on_floor()
    blocks = [b for b in scene.bodies if b.role == "block"]
    tower = f"a tower of {NUMBERS[len(blocks)]} {blocks[0].colour} {writer.pick(('blocks', 'cubes'))}"
    text, contact = _hit(writer, scene, sim, truth, facts, blocks[0].id, tower)
    if contact is None:
        contact = next((e for e in truth["events"] if e["type"] == "contact" and "obj0" in e["objects"]), None)
    toppled = any(e["type"] == "topple" for e in truth["events"])
    if toppled and truth.get("tower_down"):
        return text + writer.pick((", which topples over and stays down", ", knocking it over for good", ", which falls over and stays fallen"))
    if toppled:
        return text + ", which topples"
    return text + (", which stays standing" if contact else "")


def _permanence(writer, scene, sim, truth, facts) -> str:
    wall = writer.noun("wall")
    motion = image_motion(truth, "obj0")
    facts.setdefault("motion", {})["obj0"] = motion
    starts = [e for e in truth["events"] if e["type"] == "occlusion_start" and e["object"] == "obj0"]
    ends = [e for e in truth["events"] if e["type"] == "occlusion_end" and e["object"] == "obj0"]
    way = writer.way(motion["direction"]) if motion["direction"] != "still" else "forward"
    text = f"{writer.noun('obj0')} {_verb(sim, 'obj0')} {way}"
    if starts and ends and ends[-1]["frame"] > starts[0]["frame"]:
        return text + writer.pick((f", passes behind {wall} and comes out on the other side",
                                   f", disappears behind {wall} and reappears", f", goes behind {wall} and emerges again"))
    if starts:
        return text + f" and {writer.pick(('goes behind', 'disappears behind'))} {wall}"
    return text + f" {writer.pick(('behind', 'beyond'))} {wall}"


def _left_to_right(truth: dict, scene: Scene) -> list[str]:
    first = truth["frames"][0]["objects"]
    return sorted((b.id for b in scene.bodies), key=lambda n: first[n]["centre"][0])


def _attributes(writer, scene, sim, truth, facts) -> str:
    names = _left_to_right(truth, scene)
    facts["left_to_right"] = names
    listing = writer.listing(names, size=True)
    if len(names) == 1:
        return f"{listing} {writer.pick(('resting', 'standing', 'sitting'))}{writer.on_floor()}"
    return writer.pick((f"{listing}{writer.on_floor()}", f"from left to right: {listing}",
                        f"{NUMBERS[len(names)]} objects{writer.on_floor()}: {listing}"))


def _camera(writer, scene, sim, truth, facts) -> str:
    kind = scene.camera.kind if truth["num_frames"] > 1 else "static"
    facts["camera_motion"] = kind
    return f"{writer.pick(CAMERA_WORDS[kind])} {writer.listing(_left_to_right(truth, scene))}{writer.on_floor()}"


WRITERS = {
    "direction": _direction,
    "heading": _direction,
    "gravity": _gravity,
    "causality": _causality,
    "lasting_change": _lasting_change,
    "permanence": _permanence,
    "attributes": _attributes,
    "camera": _camera,
}


def describe(scene: Scene, sim: Simulation, truth: dict, rng: np.random.Generator, count: int = 4) -> tuple[list[str], dict]:
    """Up to `count` distinct captions of what happened, and the facts they were written from."""
    facts: dict = {}
    captions: list[str] = []
    for _ in range(6 * count):
        text = WRITERS[scene.family](Writer(scene, rng), scene, sim, truth, facts)
        text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
        if text not in captions:
            captions.append(text)
        if len(captions) == count:
            break
    return captions, facts
