"""Run suite cases through any generator (a model, the simulation itself, a still, noise) and score them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kinema.evaluation.analyzer import Analysis, analyze
from kinema.evaluation.scoring import ACCURACY_METRICS, DIAGNOSTICS, score_case
from kinema.evaluation.suite import PERTURB, Case, extend_given, fill_range
from kinema.world import Clip

BOUNDS = ("upper", "still", "noise")


@dataclass
class PreparedCase:
    """A case with its simulation rendered and analysed, and the prompt the model is given."""

    case: Case
    clip: Clip
    reference: Analysis

    @property
    def prompt(self) -> str:
        return self.clip.captions[0]

    @property
    def frames(self) -> np.ndarray:
        return self.clip.frames


GenerateFn = Callable[[PreparedCase], np.ndarray]


def prepare(cases: Sequence[Case | PreparedCase]) -> list[PreparedCase]:
    """Render and analyse each case's simulation (cases already prepared pass through)."""
    out = []
    for case in cases:
        if isinstance(case, PreparedCase):
            out.append(case)
        else:
            clip = case.render()
            out.append(PreparedCase(case, clip, analyze(clip.frames)))
    return out


def fit_frames(frames: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Resize frames to `like`'s size and trim (or hold the last frame) to its length, for scoring."""
    frames = np.asarray(frames, np.uint8)
    count, height, width = like.shape[:3]
    if frames.shape[1:3] != (height, width):
        frames = np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])
    if len(frames) < count:
        frames = np.concatenate([frames, np.repeat(frames[-1:], count - len(frames), 0)])
    return frames[:count]


def summarise(records: list[dict]) -> dict:
    """Mean of each metric per family and overall (over the cases where it applies), and case counts."""
    names = (*ACCURACY_METRICS, *DIAGNOSTICS, "score")

    def mean(rows: list[dict]) -> dict:
        out = {}
        for name in names:
            values = [r["scores"][name] for r in rows if r["scores"].get(name) is not None]
            if values:
                out[name] = float(np.mean(values))
        out["cases"] = len(rows)
        out["unscorable"] = int(sum(r["scores"].get("unscorable", 0) for r in rows))
        return out

    families = sorted({r["family"] for r in records})
    return {"overall": mean(records), "families": {f: mean([r for r in records if r["family"] == f]) for f in families}}


def evaluate(generate_fn: GenerateFn, cases: Sequence[Case | PreparedCase], progress: bool = False,
             keep_frames: bool = False, label: str = "eval") -> dict:
    """Generate every case with `generate_fn(prepared_case) -> frames (T, H, W, 3)` and score it.

    Returns {"summary": per-family and overall means, "cases": one record per case}; with `keep_frames`
    each record also holds the scored frames under "frames".
    """
    from tqdm import tqdm

    prepared = prepare(cases)
    records = []
    for item in tqdm(prepared, desc=label, unit="case", disable=not progress):
        tick = time.perf_counter()
        frames = fit_frames(generate_fn(item), item.frames)
        made = time.perf_counter() - tick
        scores = score_case(frames, item.case, item.clip, item.reference)
        record = {"id": item.case.id, "family": item.case.family, "task": item.case.task, "seed": item.case.seed,
                  "prompt": item.prompt, "scores": scores, "seconds": round(made, 3),
                  "score_seconds": round(time.perf_counter() - tick - made, 3)}
        if keep_frames:
            record["frames"] = frames
        records.append(record)
    return {"summary": summarise(records), "cases": records}


def truth_generator(item: PreparedCase) -> np.ndarray:
    """The simulation itself: every accuracy metric should be (close to) 1."""
    return item.frames


def perturbed_generator(item: PreparedCase) -> np.ndarray:
    """Upper bound: a second take of the simulation with a tiny perturbation."""
    return item.case.render(perturb=PERTURB).frames


def still_generator(item: PreparedCase) -> np.ndarray:
    """Lower bound: the first true frame held for the whole clip."""
    return np.repeat(item.frames[:1], len(item.frames), 0)


def noise_generator(item: PreparedCase) -> np.ndarray:
    """Lower bound: uniform random pixels, seeded by the case."""
    return np.random.default_rng(item.case.seed).integers(0, 256, item.frames.shape, dtype=np.uint8)


BOUND_GENERATORS: dict[str, GenerateFn] = {"upper": perturbed_generator, "still": still_generator, "noise": noise_generator}


def pipeline_generator(pipe, seed: int = 0, steps: int | None = None, width: int | None = None,
                       height: int | None = None, guidance: float | None = None) -> GenerateFn:
    """A generator that asks a `Pipeline` for each case's task, given what the task gives (first frame,
    first half, every other frame, or both ends), at `width`x`height` (default: the checkpoint's)."""
    from kinema.io import Video
    from kinema.pipeline import GenerationRequest

    def generate(item: PreparedCase) -> np.ndarray:
        case, frames = item.case, item.frames
        common = {"prompt": item.prompt, "seed": seed * 100_003 + case.index, "steps": steps,
                  "guidance_scale": guidance, "width": width, "height": height, "fps": case.fps, "fit": "resize",
                  "check_safety": False}
        seconds = case.num_frames / case.fps
        if case.task == "text":
            request = GenerationRequest(task="text", seconds=seconds, **common)
        elif case.task == "image":
            request = GenerationRequest(task="image", image=frames[0], seconds=seconds, **common)
        elif case.task == "extend":
            given = extend_given(case.num_frames)
            request = GenerationRequest(task="extend", video=Video(frames[:given], case.fps),
                                        seconds=(case.num_frames - given) / case.fps, **common)
        elif case.task == "interpolate":
            request = GenerationRequest(task="interpolate", video=Video(frames[::2], case.fps / 2), factor=2, **common)
        else:
            first, last = fill_range(case.num_frames)
            hidden = frames.copy()
            hidden[first : last + 1] = 0  # the model must not see the frames it is asked to make
            request = GenerationRequest(task="fill", video=Video(hidden, case.fps), fill_frames=(first, last), **common)
        return pipe.generate(request).frames

    return generate


def run_benchmark(generate_fn: GenerateFn, cases: Sequence[Case], out: str | Path | None = None,
                  info: dict | None = None, bounds: bool = True, worst: int = 4, progress: bool = False) -> dict:
    """Score a generator and the bounds on `cases`; with `out`, write scores.json and report.html there.

    info: extra fields for the results (checkpoint, seed, steps). Returns what scores.json holds.
    """
    from kinema.evaluation.report import normalised, write_report
    from kinema.evaluation.suite import SUITE_VERSION

    prepared = prepare(cases)
    started = time.perf_counter()
    model = evaluate(generate_fn, prepared, progress=progress, keep_frames=True, label="model")
    per_case = (time.perf_counter() - started) / max(1, len(prepared))
    runs = {"model": model["summary"]}
    bound_cases = {}
    if bounds:
        for name in BOUNDS:
            result = evaluate(BOUND_GENERATORS[name], prepared, progress=progress, label=name)
            runs[name] = result["summary"]
            bound_cases[name] = {r["id"]: r["scores"].get("score") for r in result["cases"]}
    first = prepared[0].case
    families = runs["model"]["families"]
    results = {
        "suite_version": SUITE_VERSION, "cases": len(prepared), "size": f"{first.width}x{first.height}",
        "num_frames": first.num_frames, "fps": first.fps, **(info or {}), "seconds_per_case": round(per_case, 3),
        "runs": runs,
        "normalised": {f: normalised(families[f].get("score"), runs.get("upper", {}).get("families", {}).get(f, {}).get("score"),
                                     runs.get("still", {}).get("families", {}).get(f, {}).get("score")) for f in families},
        "case_scores": [{k: v for k, v in r.items() if k != "frames"}
                        | {"bounds": {b: bound_cases[b].get(r["id"]) for b in bound_cases}} for r in model["cases"]],
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
        truth = {p.case.id: p.frames for p in prepared}
        ranked = sorted(model["cases"], key=lambda r: r["scores"].get("score") or 0.0)[:worst]
        write_report(out, results, [r | {"truth": truth[r["id"]]} for r in ranked])
    return results


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
