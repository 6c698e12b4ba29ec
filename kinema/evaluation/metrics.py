"""Pure metric functions: a generated clip's analysis against its simulation's, per family.

Every accuracy metric lies in [0, 1] (1 = agrees with the simulation). What each one expects is read from
the simulation's own analysis where it can be, so a ground-truth render scores 1 by construction of the
analyzer, not of the metric; an item the simulation itself does not show (an object that never moves far
enough to judge) is counted as unscorable instead of being scored. A metric that does not apply is None.
"""

from __future__ import annotations

import math

import numpy as np

from kinema.evaluation.analyzer import Analysis, Track

LATERAL_MARGIN = 0.05  # of the frame width: smallest sideways move that counts as motion
GROWTH_MARGIN = math.log(1.2)  # smallest change in apparent size that counts as toward/away
REST_MARGIN = 0.03  # of the frame diagonal: a resting object may wobble this much
NEAR = 0.05  # of the frame diagonal: a tracked point this close to the simulation's counts as on track
MISSING_ERROR = 0.5  # trajectory error (of the diagonal) charged for a frame where the object is missing
SEAM_SLACK = 4.0  # mean absolute step (0-255) always allowed at a seam: decoder noise, not a jump
CAMERA_IMAGE_MOTION = {"pan_left": "right", "pan_right": "left", "zoom_in": "toward", "zoom_out": "away", "static": "still"}


def in_clip(track: Track, frames: int) -> bool:
    """Whether a colour is seen enough of the clip to count as part of it (a fifth of the frames, at least 2)."""
    return int(track.present.sum()) >= max(2, round(0.2 * frames))


def clip_colours(analysis: Analysis) -> set[str]:
    """Colours that are part of the clip."""
    return {c for c, t in analysis.tracks.items() if in_clip(t, analysis.num_frames)}


def colour_f1(generated: Analysis, reference: Analysis) -> float:
    """F1 between the named colours the simulation shows and those the generated clip shows."""
    want, got = clip_colours(reference), clip_colours(generated)
    if not want and not got:
        return 1.0
    hits = len(want & got)
    return 2 * hits / (len(want) + len(got))


def count_accuracy(generated: Analysis, reference: Analysis, colours: list[str]) -> float:
    """Fraction of frames in which the generated clip shows as many of `colours` as the simulation."""
    want = np.sum([reference.present(c) for c in colours], 0)
    got = np.sum([generated.present(c) for c in colours], 0)
    return float(np.mean(want == got))


def order_accuracy(generated: Analysis, reference: Analysis, colours: list[str]) -> float | None:
    """Fraction of frames whose left-to-right order of `colours` matches the simulation's (>= 2 seen)."""
    scores = []
    for t in range(reference.num_frames):
        seen = [c for c in colours if reference.present(c)[t]]
        if len(seen) < 2:
            continue
        if not all(generated.present(c)[t] for c in seen):
            scores.append(0.0)
            continue
        ref_order = sorted(seen, key=lambda c: reference.tracks[c].centroid[t, 0])
        gen_order = sorted(seen, key=lambda c: generated.tracks[c].centroid[t, 0])
        scores.append(float(ref_order == gen_order))
    return float(np.mean(scores)) if scores else None


def _ends(track: Track, start: int, end: int, width: int, height: int, inside: bool) -> tuple[int, int] | None:
    """First and last frames in [start, end] where the track is seen (clear of the border if `inside`)."""
    ok = track.present.copy()
    if inside:
        box = np.nan_to_num(track.bbox, nan=-1.0)
        ok &= (box[:, 0] > 0) & (box[:, 1] > 0) & (box[:, 2] < width) & (box[:, 3] < height)
    frames = np.flatnonzero(ok[start : end + 1]) + start
    return (int(frames[0]), int(frames[-1])) if len(frames) >= 2 and frames[-1] > frames[0] else None


def image_motion(track: Track, first: int, last: int, width: int) -> str | None:
    """The word for a track's motion between two frames: left, right, toward, away or still (None if unseen)."""
    if not (track.present[first] and track.present[last]):
        return None
    lateral = (track.centroid[last, 0] - track.centroid[first, 0]) / width
    growth = math.log(track.area[last] / track.area[first])
    sideways, depthways = abs(lateral) / LATERAL_MARGIN, abs(growth) / GROWTH_MARGIN
    if max(sideways, depthways) < 1:
        return "still"
    if sideways >= depthways:
        return "right" if lateral > 0 else "left"
    return "toward" if growth > 0 else "away"


def motion_matches(word: str, track: Track, first: int, last: int, width: int) -> str:
    """'hit', 'mirror' or 'miss': whether the motion along the named axis has the named sign and size."""
    if not (track.present[first] and track.present[last]):
        return "miss"
    lateral = (track.centroid[last, 0] - track.centroid[first, 0]) / width
    growth = math.log(track.area[last] / track.area[first])
    if word == "still":
        return "hit" if abs(lateral) < LATERAL_MARGIN and abs(growth) < GROWTH_MARGIN else "miss"
    amount = lateral if word in ("left", "right") else growth
    margin = LATERAL_MARGIN if word in ("left", "right") else GROWTH_MARGIN
    sign = 1 if word in ("right", "toward") else -1
    if amount * sign >= margin:
        return "hit"
    return "mirror" if -amount * sign >= margin else "miss"


def direction_scores(generated: Analysis, reference: Analysis, items: list[tuple[str, str, int, int]]) -> dict:
    """Direction accuracy and mirror-confusion rate over (colour, word, start, end) items."""
    width, height = reference.size
    outcomes, skipped = [], 0
    for colour, word, start, end in items:
        inside = word in ("toward", "away")
        span = _ends(reference.tracks[colour], start, end, width, height, inside)
        if span is None or motion_matches(word, reference.tracks[colour], *span, width) != "hit":
            skipped += 1  # the simulation itself does not show this motion clearly enough to judge
            continue
        outcomes.append(motion_matches(word, generated.tracks[colour], *span, width))
    if not outcomes:
        return {"direction": None, "mirror": None, "unscorable": skipped}
    return {"direction": outcomes.count("hit") / len(outcomes), "mirror": outcomes.count("mirror") / len(outcomes),
            "unscorable": skipped}


def trajectory_scores(generated: Analysis, reference: Analysis, colours: list[str]) -> dict:
    """Mean centroid distance to the simulation (of the frame diagonal) and the fraction of points near it."""
    width, height = reference.size
    diagonal = math.hypot(width, height)
    errors = []
    for colour in colours:
        ref, gen = reference.tracks[colour], generated.tracks[colour]
        seen = ref.present
        distance = np.linalg.norm(gen.centroid[seen] - ref.centroid[seen], axis=1) / diagonal
        errors.append(np.where(gen.present[seen], np.minimum(distance, 1.0), MISSING_ERROR))
    if not errors or not sum(len(e) for e in errors):
        return {"trajectory": None, "trajectory_error": None}
    flat = np.concatenate(errors)
    return {"trajectory": float(np.mean(flat < NEAR)), "trajectory_error": float(flat.mean())}


def _nearest_seen(track: Track, frame: int, low: int, high: int) -> int | None:
    frames = np.flatnonzero(track.present[low : high + 1]) + low
    return int(frames[np.abs(frames - frame).argmin()]) if len(frames) else None


def gravity_score(generated: Track, reference: Track, bounce_frames: list[int]) -> float | None:
    """Falls (down the image), accelerates while falling, and never climbs back as high as it started.

    bounce_frames: the simulation's bounce frames for this object; the first ends the fall.
    """
    ref_y = reference.centroid[:, 1]
    if not reference.present[0] or np.isnan(ref_y).all():
        return None
    if bounce_frames:  # the lowest point reached by the first bounce
        land = int(np.nanargmax(ref_y[: bounce_frames[0] + 1]))
    else:
        land = int(np.flatnonzero(ref_y >= np.nanmax(ref_y) - 1.0)[0])
    ref_fall = ref_y[land] - ref_y[0]
    if land < 2 or ref_fall <= 0:
        return None
    first, landed = _nearest_seen(generated, 0, 0, land), _nearest_seen(generated, land, 0, land)
    if first is None or landed is None or landed <= first:
        return 0.0
    y = generated.centroid[:, 1]
    fell = y[landed] - y[first] > 0.5 * ref_fall
    frames = np.flatnonzero(generated.present[: land + 1])
    accelerates = False
    if len(frames) >= 3:
        ref_frames = np.flatnonzero(reference.present[: land + 1])
        ref_curve = np.polyfit(ref_frames, ref_y[ref_frames], 2)[0]
        accelerates = bool(np.polyfit(frames, y[frames], 2)[0] > 0.25 * ref_curve)
    ground = np.nanmax(y)
    after = y[land + 1 :][generated.present[land + 1 :]]
    drop = ground - y[first]
    if not len(after) or drop <= 0:
        settles = False
    else:
        rebound = ground - after.min()
        settles = bool(rebound < (0.9 if bounce_frames else 0.25) * drop)
    return (float(fell) + float(accelerates) + float(settles)) / 3


def causality_score(generated: Analysis, reference: Analysis, hitter: str, target: str, contact: int | None) -> dict:
    """The target rests until contact, then moves the way the simulation's does, away from the hitter."""
    width, height = reference.size
    diagonal = math.hypot(width, height)
    ref, gen = reference.tracks[target], generated.tracks[target]
    checks = []
    rest_until = reference.num_frames if contact is None else max(0, contact - 1)
    if rest_until >= 2 and ref.present[0]:
        if not gen.present[0]:
            checks.append(0.0)
        else:
            frames = np.flatnonzero(gen.present[:rest_until])
            wobble = np.linalg.norm(gen.centroid[frames] - gen.centroid[0], axis=1).max() / diagonal
            checks.append(float(wobble < REST_MARGIN))
    if contact is not None:
        end = reference.num_frames - 1
        ref_dx = ref.centroid[end, 0] - ref.centroid[contact, 0] if ref.present[[contact, end]].all() else 0.0
        if abs(ref_dx) >= LATERAL_MARGIN * width:
            moved = gen.present[[contact, end]].all() and (gen.centroid[end, 0] - gen.centroid[contact, 0]) * np.sign(ref_dx) >= LATERAL_MARGIN * width
            checks.append(float(moved))
            if _push(reference, hitter, contact) * ref_dx > 0:  # unless the hitter hides the target's far side
                push = _push(generated, hitter, contact)
                checks.append(float(gen.present[[contact, end]].all() and push * (gen.centroid[end, 0] - gen.centroid[contact, 0]) > 0))
    return {"causality": float(np.mean(checks)) if checks else None}


def _push(analysis: Analysis, hitter: str, contact: int) -> float:
    """The hitter's sideways travel (pixels) up to the contact frame; 0 when it is not seen."""
    track = analysis.tracks[hitter]
    before = _nearest_seen(track, 0, 0, contact)
    if before is None or not track.present[contact]:
        return 0.0
    return float(track.centroid[contact, 0] - track.centroid[before, 0])


def paint_score(generated: Track, reference: Track) -> float | None:
    """A mark appears when the simulation's does and stays: seen from then on, not shrinking away."""
    frames = np.flatnonzero(reference.present)
    if not len(frames):
        return None
    after = generated.present[frames[0] :]
    kept = bool(generated.present[-1]) and generated.area[-1] >= 0.5 * generated.area.max()
    return (float(after.mean()) + float(kept)) / 2


def tower_score(generated: Track, reference: Track, down: bool) -> float | None:
    """A knocked-over tower stays down (its blocks' box stays low); a standing one stays standing."""
    height = lambda track: track.bbox[:, 3] - track.bbox[:, 1]  # noqa: E731
    ref_h, gen_h = height(reference), height(generated)
    if not reference.present[0]:
        return None
    low = np.nan_to_num(ref_h, nan=np.inf) < 0.85 * ref_h[0]
    if down:
        if not low.any():
            return None
        fell = int(np.flatnonzero(low)[0])
        if not generated.present[0]:
            return 0.0
        return float(np.mean(np.nan_to_num(gen_h[fell:], nan=np.inf) < 0.85 * gen_h[0]))
    if low.any() or not generated.present[0]:
        return None if low.any() else 0.0
    return float(np.mean(np.nan_to_num(gen_h, nan=0.0) >= 0.85 * gen_h[0]))


def presence_agreement(generated: Analysis, reference: Analysis, colours: list[str] | None = None) -> float | None:
    """Fraction of (colour, frame) pairs where the generated clip shows a colour exactly when the simulation does.

    Colours default to every colour seen in either clip, so a colour that appears from nothing counts too.
    """
    if colours is None:
        colours = [c for c in reference.tracks if reference.present(c).any() or generated.present(c).any()]
    if not colours:
        return None
    agree = [generated.present(c) == reference.present(c) for c in colours]
    return float(np.mean(agree))


def consistency_score(generated: Analysis, reference: Analysis, colours: list[str]) -> float | None:
    """Each object's size (relative to the simulation's) and hue stay steady from frame to frame."""
    scores = []
    for colour in colours:
        ref, gen = reference.tracks[colour], generated.tracks[colour]
        both = ref.present & gen.present
        if both.sum() < 2:
            scores.append(0.0)
            continue
        size = 1 - min(1.0, float(np.std(np.log(gen.area[both] / ref.area[both]))) / math.log(2))
        hue = 1 - min(1.0, float(np.std(gen.hue_offset[both])) / 10.0)
        scores.append((size + hue) / 2)
    return float(np.mean(scores)) if scores else None


def psnr(a: np.ndarray, b: np.ndarray, cap: float = 60.0) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB, capped (identical images give `cap`)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return cap if mse == 0 else min(cap, 10 * math.log10(255.0**2 / mse))


def seam_score(frames: np.ndarray, reference: np.ndarray, seams: list[int]) -> float | None:
    """Continuity where given frames meet made ones: the jump at each seam against typical steps.

    A seam step up to twice the usual largest step scores 1, falling to 0 at six times; the largest step is
    the smaller of the clip's own away from the seams and the simulation's, so neither a clip that jumps
    only at its seams nor one that is all jumps (noise) passes.
    """
    steps = _steps(frames)  # step k: frame k -> k+1
    seams = [s for s in seams if 0 < s < len(frames)]
    if not seams:
        return None
    others = np.delete(steps, [s - 1 for s in seams])
    own = float(others.max()) if len(others) else 0.0
    simulated = float(_steps(reference).max()) if len(reference) > 1 else 0.0
    scores = []
    for seam in seams:
        ratio = steps[seam - 1] / (min(own, simulated) + SEAM_SLACK)
        scores.append(min(1.0, max(0.0, (6.0 - ratio) / 4.0)))
    return float(np.mean(scores))


def _steps(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference (0-255) between consecutive frames, (T - 1,)."""
    return np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
