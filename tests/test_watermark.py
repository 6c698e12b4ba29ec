import numpy as np
import pytest

from kinema.io import read_video, write_video
from kinema.io.frames import fit_frames
from kinema.provenance import detect_watermark, embed_watermark
from kinema.provenance.watermark import P_THRESHOLD


def moving_discs(seed: int, size: int = 128, frames: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    floor = rng.uniform(60, 180, 3) + (yy / size * 40)[..., None]
    video = np.repeat(floor[None], frames, axis=0)
    for _ in range(3):
        colour, (x0, y0), (vx, vy) = rng.uniform(0, 255, 3), rng.uniform(20, size - 20, 2), rng.uniform(-3, 3, 2)
        for t in range(frames):
            video[t][(xx - x0 - vx * t) ** 2 + (yy - y0 - vy * t) ** 2 < 15**2] = colour
    return np.clip(video, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_discs(0)


def test_invisible_and_carries_its_id(clip):
    marked = embed_watermark(clip, 123456)
    assert marked.dtype == np.uint8 and marked.shape == clip.shape
    assert psnr(clip, marked) >= 40
    result = detect_watermark(marked)
    assert result.found and result.tag_ok and result.payload_id == 123456
    assert result.p_value <= P_THRESHOLD


def test_clean_clip_is_not_flagged(clip):
    result = detect_watermark(clip)
    assert not result.found and result.payload_id is None
    assert result.p_value > P_THRESHOLD


def test_noise_video_is_not_flagged():
    noise = np.random.default_rng(0).integers(0, 256, size=(8, 96, 96, 3), dtype=np.uint8)
    result = detect_watermark(noise)
    assert not result.found and result.p_value > P_THRESHOLD


def test_survives_crop_downscale_and_reencode(clip, tmp_path):
    marked = embed_watermark(clip, 42)
    cropped = marked[:, 13:-13, 13:-13]  # 10% per side
    small = fit_frames(cropped, 52, 52, "resize")
    write_video(tmp_path / "attacked.mp4", small, 8, crf=28)
    result = detect_watermark(read_video(tmp_path / "attacked.mp4").frames)
    assert result.found


def test_single_frame_round_trip(clip):
    frame = clip[5]
    marked = embed_watermark(frame, 7)
    assert marked.shape == frame.shape
    result = detect_watermark(marked)
    assert result.found and result.payload_id == 7
    assert not detect_watermark(frame).found
