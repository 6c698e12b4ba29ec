"""End to end with the shipped checkpoint: loads offline, makes real videos, marks them, scores them."""

import json
import os
import subprocess
import sys

import pytest

from kinema.checkpoint import DEFAULT_CHECKPOINT
from kinema.io import read_video

pytestmark = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "dit.safetensors").is_file(),
                                reason="the shipped checkpoint is not in this checkout")


def kinema(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_generate_offline_writes_a_marked_video(tmp_path):
    out = tmp_path / "ball.mp4"
    run = kinema("generate", "a red sphere rolls from left to right", "-o", str(out), "--seconds", "2",
                 "--steps", "4", "--seed", "1", "--json", "--precision", "fp32", env_extra={"KINEMA_KEY_DIR": str(tmp_path / "keys")})
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["size"] == "128x128" and summary["frames"] == 16 and summary["fps"] == 8.0
    assert summary["precision"] == "fp32"
    video = read_video(out)
    assert video.frames.shape == (16, 128, 128, 3)
    verify = kinema("verify", str(out), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["watermark"]["found"]


def test_video_shows_more_than_a_flat_floor(tmp_path):
    from kinema.pipeline import GenerationRequest, Pipeline

    frames = Pipeline.from_checkpoint().generate(GenerationRequest("a red sphere rolls from left to right")).frames
    assert frames.std() > 5


def test_wide_and_tall_sizes(tmp_path):
    for size in ("160x96", "96x160"):
        out = tmp_path / f"{size}.mp4"
        run = kinema("generate", "a blue cube slides to the left", "-o", str(out), "--size", size, "--seconds", "1",
                     "--steps", "2", "--no-sign", "--quiet")
        assert run.returncode == 0, run.stderr
        width, height = (int(v) for v in size.split("x"))
        assert read_video(out).frames.shape[1:3] == (height, width)


def test_refused_prompt_exits_3(tmp_path):
    run = kinema("generate", "a graphic beheading with blood everywhere", "-o", str(tmp_path / "x.mp4"))
    assert run.returncode == 3
    assert "violence" in run.stderr and not (tmp_path / "x.mp4").exists()


def test_bad_size_names_the_range(tmp_path):
    run = kinema("generate", "a ball", "-o", str(tmp_path / "x.mp4"), "--size", "1000x1000")
    assert run.returncode == 2 and "64 to 256" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_eval_smoke_run(tmp_path):
    """`kinema eval --cases 10` with the shipped model writes a report with the model and its bounds."""
    run = kinema("eval", "--cases", "10", "--out", str(tmp_path), "--steps", "8", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "report.html").is_file() and (tmp_path / "scores.json").is_file()
    runs = json.loads((tmp_path / "scores.json").read_text())["runs"]
    assert runs["upper"]["overall"]["score"] > 0.9
    assert runs["still"]["overall"]["score"] > runs["noise"]["overall"]["score"]
    assert 0.0 <= runs["model"]["overall"]["score"] <= 1.0 and runs["model"]["overall"]["cases"] == 10
