"""The benchmark's analyzer and metrics: truth scores full marks, floors fail, the CLI writes a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from kinema.evaluation import (
    ACCURACY_METRICS,
    SUITE_VERSION,
    TASKS,
    analyze,
    build_suite,
    evaluate,
    noise_generator,
    perturbed_generator,
    prepare,
    still_generator,
    truth_generator,
)
from kinema.evaluation.metrics import psnr, seam_score
from kinema.world import FAMILIES


@pytest.fixture(scope="module")
def small_suite():
    """Every family with every task once: 35 short clips at 64x64."""
    return prepare(build_suite(35, 64, 64, num_frames=9))


def _bad(result: dict, below: float) -> list:
    return [(r["id"], name, round(v, 3)) for r in result["cases"] for name, v in r["scores"].items()
            if name in ACCURACY_METRICS and v is not None and v < below]


def test_suite_is_fixed_and_covers_every_family_and_task():
    cases = build_suite()
    assert SUITE_VERSION and len(cases) == 100
    assert {c.family for c in cases} == set(FAMILIES) and {c.task for c in cases} == set(TASKS)
    assert all(c.seed >= 50_000_000 for c in cases) and len({c.seed for c in cases}) == 100
    assert (cases[0].width, cases[0].height, cases[0].num_frames) == (128, 128, 17)
    assert cases == build_suite()
    extend = next(c for c in cases if c.task == "extend").known_frames()
    assert extend[:9].all() and not extend[9:].any()
    fill = next(c for c in cases if c.task == "fill").known_frames()
    assert fill[:5].all() and not fill[5:13].any() and fill[13:].all()


def test_analyzer_matches_rendered_pixels_exactly(small_suite):
    for item in small_suite[:7]:
        for k, frame in enumerate(item.clip.truth["frames"]):
            expected: dict[str, int] = {}
            for obj in item.clip.truth["objects"]:
                expected[obj["colour"]] = expected.get(obj["colour"], 0) + frame["objects"][obj["id"]]["pixels"]
                if obj["paint"]:
                    expected[obj["paint"]] = expected.get(obj["paint"], 0) + frame["mark_pixels"]
            for colour, track in item.reference.tracks.items():
                if expected.get(colour, 0) >= 50:  # slivers without a solid 2x3 core are dropped
                    assert abs(track.area[k] - expected[colour]) <= max(12, 0.05 * expected[colour]), (item.case.id, k, colour)
                elif colour not in expected:
                    assert not track.present[k], (item.case.id, k, colour)


def test_analyzer_survives_shading_and_blur(small_suite):
    item = small_suite[5]  # attributes: one to four resting objects
    frames = ndimage.gaussian_filter(item.frames.astype(np.float32) * 0.75, (0, 1.0, 1.0, 0)).round().astype(np.uint8)
    soft = analyze(frames)
    for colour, track in item.reference.tracks.items():
        assert (soft.tracks[colour].present == track.present).all()
        seen = track.present
        if seen.any():
            assert np.allclose(soft.tracks[colour].area[seen], track.area[seen], rtol=0.25)
            assert np.abs(soft.tracks[colour].centroid[seen] - track.centroid[seen]).max() < 1.5


def test_ground_truth_scores_full_marks(small_suite):
    result = evaluate(truth_generator, small_suite)
    assert not _bad(result, 0.95)
    overall = result["summary"]["overall"]
    for name in ACCURACY_METRICS:
        assert overall[name] >= 0.95, name
    assert overall["trajectory_error"] == 0.0 and overall["mirror"] == 0.0
    assert overall["unscorable"] <= 3  # motions the simulation itself shows too faintly to judge


def test_second_take_is_the_upper_bound(small_suite):
    overall = evaluate(perturbed_generator, small_suite)["summary"]["overall"]
    assert overall["score"] >= 0.95 and overall["trajectory_error"] < 0.02


def test_noise_scores_at_the_floor(small_suite):
    overall = evaluate(noise_generator, small_suite)["summary"]["overall"]
    assert overall["score"] < 0.1
    for name in ("colours", "count", "direction", "trajectory", "gravity", "causality", "consistency", "seam"):
        assert overall[name] < 0.1, name
    assert overall["unparsed"] > 0.9


def test_still_video_fails_motion_and_gravity(small_suite):
    summary = evaluate(still_generator, small_suite)["summary"]
    overall = summary["overall"]
    assert overall["direction"] < 0.25  # only a static camera's "nothing moves" is right
    assert summary["families"]["direction"]["direction"] == 0.0
    assert overall["gravity"] < 0.2 and overall["lasting_change"] < 0.5 and overall["trajectory"] < 0.7
    assert overall["colours"] > 0.9  # a still frame still shows the right objects


def test_mirrored_truth_is_caught_as_mirror_confusion(small_suite):
    sideways = [p for p in small_suite if p.case.family == "direction"
                and p.clip.truth["facts"]["motion"]["obj0"]["direction"] in ("left", "right")]
    assert sideways
    direction = evaluate(lambda item: item.frames[:, :, ::-1], sideways)["summary"]["overall"]
    assert direction["direction"] == 0.0 and direction["mirror"] == 1.0


def test_seam_and_psnr_metrics():
    ramp = np.linspace(0, 60, 9)[:, None, None, None] * np.ones((9, 8, 8, 3))
    smooth = ramp.astype(np.uint8)
    jump = smooth.copy()
    jump[5:] = np.clip(jump[5:].astype(int) + 120, 0, 255).astype(np.uint8)
    assert seam_score(smooth, smooth, [5]) == 1.0
    assert seam_score(jump, smooth, [5]) == 0.0
    assert psnr(smooth[0], smooth[0]) == 60.0 and psnr(smooth[0], smooth[-1]) < 20


def test_eval_command_writes_report_and_scores(tmp_path: Path):
    from kinema.cli import main
    from kinema.evaluation.runner import pipeline_generator
    from kinema.pipeline import Pipeline
    from tests.tiny import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    out = tmp_path / "eval"
    code = main(["eval", "--checkpoint", str(checkpoint), "--cases", "3", "--size", "32x32", "--frames", "9",
                 "--out", str(out), "--quiet", "--worst", "2"])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["suite_version"] == SUITE_VERSION and scores["cases"] == 3
    assert set(scores["runs"]) == {"model", "upper", "still", "noise"}
    assert scores["runs"]["upper"]["overall"]["score"] > scores["runs"]["noise"]["overall"]["score"]
    page = (out / "report.html").read_text()
    assert "charts/overview.png" in page and "strips/" in page
    assert (out / "charts" / "overview.png").stat().st_size > 1000 and len(list((out / "strips").glob("*.png"))) == 2

    # the same seed makes the same frames, so scores repeat exactly
    item = prepare(build_suite(1, 32, 32, num_frames=9))[0]
    generate = pipeline_generator(Pipeline.from_checkpoint(checkpoint), seed=0, width=32, height=32)
    assert np.array_equal(generate(item), generate(item))
    # --guidance reaches the sampler: another scale makes other frames, and the run records it
    guided = pipeline_generator(Pipeline.from_checkpoint(checkpoint), seed=0, width=32, height=32, guidance=8.0)
    assert not np.array_equal(generate(item), guided(item))
    assert scores["guidance"] == Pipeline.from_checkpoint(checkpoint).cfg.sampling.guidance_scale
    assert main(["eval", "--checkpoint", str(checkpoint), "--guidance", "0.5", "--quiet"]) == 2
    # --bf16 samples under bf16 autocast and says so in the run's record
    assert scores["precision"] == "fp32"
    assert main(["eval", "--checkpoint", str(checkpoint), "--cases", "1", "--size", "32x32", "--frames", "9",
                 "--out", str(tmp_path / "bf16"), "--quiet", "--no-bounds", "--bf16"]) == 0
    assert json.loads((tmp_path / "bf16" / "scores.json").read_text())["precision"] == "bf16"
    with pytest.raises(SystemExit) as refused:  # argparse names the choices
        main(["eval", "--checkpoint", str(checkpoint), "--precision", "fp16", "--quiet"])
    assert refused.value.code == 2


@pytest.mark.slow
def test_ground_truth_full_marks_at_default_size(reduced: bool):
    """The standard suite's own size and length: 128x128, 17 frames, every family and task."""
    cases = build_suite(14 if reduced else 100)
    result = evaluate(truth_generator, cases)
    assert not _bad(result, 0.95)
    assert result["summary"]["overall"]["score"] >= 0.99


def test_gallery_check_reads_colour_and_motion_from_a_world_clip():
    from kinema.evaluation.gallery import GalleryPrompt, check_clip
    from kinema.world.clip import render_clip

    clip = render_clip(1, family="direction", width=64, height=64)  # "A large pink box slides to the right"
    right = GalleryPrompt("right", clip.captions[0], ("pink",), (("pink", "right"),))
    assert check_clip(clip.frames, right)["passed"]
    mirrored = np.ascontiguousarray(clip.frames[:, :, ::-1])
    result = check_clip(mirrored, right)
    assert result["colours"] and not result["motion"] and not result["passed"]
    assert check_clip(mirrored, GalleryPrompt("left", "", ("pink",), (("pink", "left"),)))["passed"]
    # The object fading out half-way fails the colour test, as many gallery samples do.
    faded = clip.frames.copy()
    faded[len(faded) // 2 :] = faded[0, :1, :1]  # the floor colour of the top-left corner
    assert not check_clip(faded, right)["colours"]
    assert not check_clip(clip.frames, GalleryPrompt("wrong colour", "", ("green",)))["passed"]


def test_gallery_check_sees_a_drop_and_counts_samples():
    from kinema.evaluation.gallery import GalleryPrompt, check_clip, check_gallery
    from kinema.world.clip import render_clip

    clip = render_clip(1, family="gravity", width=64, height=64)  # "A large cyan cylinder drops to the floor..."
    drop = GalleryPrompt("drop", clip.captions[0], ("cyan",), (("cyan", "down"),))
    assert check_clip(clip.frames, drop)["passed"]
    assert not check_clip(np.ascontiguousarray(clip.frames[:, ::-1]), drop)["motion"]  # upside down: it rises
    with pytest.raises(ValueError, match="motion 'up'"):
        check_clip(clip.frames, GalleryPrompt("up", "", ("cyan",), (("cyan", "up"),)))

    def generate(prompt: str, seed: int) -> np.ndarray:  # seed 0: the clip, seed 1: it mirrored in time
        return clip.frames if seed == 0 else np.ascontiguousarray(clip.frames[::-1])

    summary = check_gallery(generate, [0, 1], items=[drop])
    assert summary["rows"][0]["passed"] == 1 and summary["samples"] == 2 and summary["share"] == 0.5


def test_mirror_check_tells_a_prompt_that_steers_from_a_seed_that_does():
    from kinema.evaluation.gallery import lateral_shift, mirror_check
    from kinema.world import render_clip

    clip = render_clip(1, "direction", 64, 64)  # a pink box sliding right
    rightward, leftward = clip.frames, np.ascontiguousarray(clip.frames[:, :, ::-1])
    assert lateral_shift(rightward, "pink") > 0.3 and lateral_shift(leftward, "pink") < -0.3
    assert lateral_shift(rightward, "green") is None
    pairs = [("box right", "box left", "pink")]

    def steered(prompt: str, seed: int) -> np.ndarray:
        return rightward if prompt.endswith("right") else leftward

    def by_seed(prompt: str, seed: int) -> np.ndarray:
        return rightward if seed % 2 else leftward

    good = mirror_check(steered, [0, 1, 2], pairs)
    assert (good["follows"], good["same_way"], good["measured"]) == (3, 0, 3)
    bad = mirror_check(by_seed, [0, 1, 2], pairs)
    assert (bad["follows"], bad["same_way"], bad["measured"]) == (0, 3, 3)


def test_word_sensitivity_moves_only_with_the_words_and_errs_less_at_less_noise():
    from kinema.evaluation.gallery import mirrored_words, word_sensitivity
    from kinema.pipeline import Pipeline
    from kinema.world import render_clip

    assert mirrored_words("a ball rolls from left to right") == "a ball rolls from right to left"
    pipe = Pipeline.from_checkpoint()  # the shipped model
    clip = render_clip(0, "heading", 64, 64, num_frames=9)
    plain = word_sensitivity(pipe, [(clip.frames, "a small yellow cube")], times=(1.0, 0.3))
    assert all(row["change"] == 0.0 for row in plain)  # no direction word: nothing to swap
    rows = word_sensitivity(pipe, [(clip.frames, clip.captions[0])], times=(1.0, 0.3), first_frame=True)
    assert all(row["change"] > 0 for row in rows) and rows[0]["error"] > rows[1]["error"] > 0
