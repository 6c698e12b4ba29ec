"""Score one generated clip against its case's simulation: which metrics apply to which family and task."""

from __future__ import annotations

import numpy as np

from kinema.evaluation import metrics as m
from kinema.evaluation.analyzer import Analysis, analyze
from kinema.evaluation.suite import Case, extend_given, fill_range
from kinema.world import Clip

# Accuracy-like metrics in [0, 1], higher is better; a case's score is their mean over those that apply.
ACCURACY_METRICS = ("colours", "count", "order", "direction", "trajectory", "gravity", "causality",
                    "lasting_change", "permanence", "occlusion", "consistency", "first_frame", "seam")
# Diagnostics: lower is better (trajectory_error, mirror, unparsed) or not a fraction (first_frame_psnr).
DIAGNOSTICS = ("trajectory_error", "mirror", "first_frame_psnr", "unparsed")


def _contact(truth: dict, hitter: str, targets: set[str]) -> int | None:
    for event in truth["events"]:
        if event["type"] == "contact" and hitter in event["objects"] and targets & set(event["objects"]):
            return int(event["frame"])
    return None


def _direction_items(truth: dict, colour_of: dict[str, str], frames: int) -> list[tuple[str, str, int, int]]:
    """(colour, expected image motion, first frame, last frame) for each motion the captions name."""
    facts, family, last = truth["facts"], truth["family"], frames - 1
    if family == "camera":
        word = m.CAMERA_IMAGE_MOTION.get(facts.get("camera_motion", ""))
        if word is None:  # orbits move near and far objects opposite ways; no single direction to check
            return []
        return [(colour_of[o["id"]], word, 0, last) for o in truth["objects"]]
    motion = facts.get("motion", {})
    blocks = {o["id"] for o in truth["objects"] if o["role"] == "block"}
    items = []
    for name, fact in motion.items():
        start, end = 0, last
        if family == "causality" or blocks:
            contact = _contact(truth, "obj0", {"obj1"} | blocks)
            if contact is not None:
                start, end = (0, contact) if name == "obj0" else (contact, last)
        items.append((colour_of[name], fact["direction"], start, end))
    return items


def score_case(frames: np.ndarray, case: Case, clip: Clip, reference: Analysis) -> dict:
    """Every applicable metric for `frames` (fitted to the case's size and length) against the simulation.

    clip: the case's simulation; reference: the analyzer's reading of it (computed once per case).
    """
    truth = clip.truth
    generated = analyze(frames)
    count = reference.num_frames
    objects = truth["objects"]
    colour_of = {o["id"]: o["colour"] for o in objects}
    seen = [c for c in dict.fromkeys(colour_of.values()) if reference.present(c).any()]
    scores: dict = {
        "colours": m.colour_f1(generated, reference),
        "permanence": m.presence_agreement(generated, reference),
        "consistency": m.consistency_score(generated, reference, [c for c in seen if m.in_clip(reference.tracks[c], count)]),
        **m.trajectory_scores(generated, reference, seen),
    }
    parsed_ref = np.any([t.present for t in reference.tracks.values()], 0)
    parsed_gen = np.any([t.present for t in generated.tracks.values()], 0)
    scores["unparsed"] = float(np.mean(parsed_ref & ~parsed_gen))

    family = truth["family"]
    bodies = [o for o in objects if o["role"] == "object"]
    if family in ("attributes", "camera"):
        scores["count"] = m.count_accuracy(generated, reference, [o["colour"] for o in bodies])
    if family == "attributes":
        scores["order"] = m.order_accuracy(generated, reference, [o["colour"] for o in bodies])
    direction = m.direction_scores(generated, reference, _direction_items(truth, colour_of, count))
    scores.update(direction)
    if family == "gravity":
        values = [m.gravity_score(generated.tracks[o["colour"]], reference.tracks[o["colour"]],
                                  [e["frame"] for e in truth["events"] if e["type"] == "bounce" and e["object"] == o["id"]])
                  for o in bodies]
        values = [v for v in values if v is not None]
        scores["gravity"] = float(np.mean(values)) if values else None
    blocks = [o for o in objects if o["role"] == "block"]
    if family == "causality" or (family == "lasting_change" and blocks):
        target = blocks[0]["colour"] if blocks else colour_of["obj1"]
        targets = {o["id"] for o in blocks} or {"obj1"}
        scores.update(m.causality_score(generated, reference, colour_of["obj0"], target, _contact(truth, "obj0", targets)))
    if family == "lasting_change":
        if blocks:
            down = bool(truth["facts"].get("tower_down"))
            scores["lasting_change"] = m.tower_score(generated.tracks[blocks[0]["colour"]], reference.tracks[blocks[0]["colour"]], down)
        else:
            paint = bodies[0]["paint"]
            scores["lasting_change"] = m.paint_score(generated.tracks[paint], reference.tracks[paint]) if paint else None
    if family == "permanence":
        scores["occlusion"] = m.presence_agreement(generated, reference, [colour_of["obj0"]])

    if case.task == "image":
        scores["first_frame_psnr"] = m.psnr(frames[0], clip.frames[0])
        scores["first_frame"] = min(1.0, scores["first_frame_psnr"] / 40.0)
    elif case.task == "extend":
        scores["seam"] = m.seam_score(frames, clip.frames, [extend_given(count)])
    elif case.task == "fill":
        first, last = fill_range(count)
        scores["seam"] = m.seam_score(frames, clip.frames, [first, last + 1])
    values = [scores[k] for k in ACCURACY_METRICS if scores.get(k) is not None]
    scores["score"] = float(np.mean(values)) if values else None
    return scores

