import numpy as np
import pytest
import torch
from PIL import Image

from kinema.errors import InputError
from kinema.io import (
    contact_sheet,
    fit_frames,
    frames_to_tensor,
    read_image,
    read_media,
    read_video,
    save_gif,
    save_strip,
    tensor_to_frames,
    write_image,
    write_video,
)


def _moving_square(t=9, h=48, w=64):
    """A bright square moving right over a smooth gradient: easy for H.264, easy to check."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = np.linspace(30, 200, w, dtype=np.uint8)[None, None, :]
    frames[..., 2] = 90
    for k in range(t):
        frames[k, 16:32, 4 + 4 * k : 20 + 4 * k] = (240, 240, 40)
    return frames


def test_mp4_round_trip_keeps_frames_fps_and_size(tmp_path):
    frames = _moving_square()
    path = write_video(tmp_path / "clip.mp4", frames, fps=12.0)
    video = read_video(path)
    assert video.frames.shape == frames.shape and video.size == (64, 48)
    assert video.fps == pytest.approx(12.0) and video.seconds == pytest.approx(9 / 12)
    assert np.abs(video.frames.astype(int) - frames).mean() < 4  # within codec error
    assert read_video(path, max_frames=3).num_frames == 3
    assert not list(tmp_path.glob(".clip.*"))  # the temporary file was renamed, not left behind


def test_fractional_fps_survives(tmp_path):
    video = read_video(write_video(tmp_path / "ntsc.mp4", _moving_square(t=4), fps=30000 / 1001))
    assert video.fps == pytest.approx(29.97, abs=0.01)


def test_image_reads_as_one_frame_video(tmp_path):
    frame = _moving_square(t=1)[0]
    path = write_image(tmp_path / "still.png", frame)
    for video in (read_image(path), read_media(path)):
        assert video.frames.shape == (1, 48, 64, 3) and np.array_equal(video.frames[0], frame)
    assert read_media(write_video(tmp_path / "v.mp4", _moving_square(t=3), 8)).num_frames == 3


@pytest.mark.parametrize(
    ("name", "content"),
    [("missing.mp4", None), ("empty.mp4", b""), ("notes.mp4", b"this is not a video at all" * 20)],
)
def test_unreadable_files_raise_input_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for reader in (read_video, read_media):
        with pytest.raises(InputError, match=name):
            reader(path)


def test_truncated_video_and_bad_image_and_folder_are_named(tmp_path):
    good = write_video(tmp_path / "good.mp4", _moving_square(), 8).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 3])
    with pytest.raises(InputError, match="cut.mp4"):
        read_video(tmp_path / "cut.mp4")
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="fake.png"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(InputError, match="folder"):
        read_video(tmp_path)


def test_odd_sizes_and_bad_frames_are_rejected(tmp_path):
    with pytest.raises(InputError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 64, 3), np.uint8), 8)
    with pytest.raises(InputError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 32, 32, 3), np.float32), 8)
    with pytest.raises(InputError, match="fps"):
        write_video(tmp_path / "z.mp4", np.zeros((2, 32, 32, 3), np.uint8), 0)
    assert not (tmp_path / "odd.mp4").exists()


@pytest.mark.parametrize("mode", ["crop", "pad", "resize"])
def test_fit_frames_shapes(mode):
    frames = _moving_square(t=3, h=48, w=64)
    for width, height in ((32, 32), (64, 16), (24, 96)):
        out = fit_frames(frames, width, height, mode)
        assert out.shape == (3, height, width, 3) and out.dtype == np.uint8


def test_fit_frames_pad_letterboxes_and_crop_keeps_the_centre():
    frames = np.full((1, 32, 64, 3), 200, np.uint8)
    padded = fit_frames(frames, 64, 64, "pad")
    assert padded[0, :16].max() == 0 and padded[0, 16:48].min() == 200 and padded[0, 48:].max() == 0
    frames[:, :, 24:40] = 10  # a dark band in the middle survives a centre crop to a square
    cropped = fit_frames(frames, 32, 32, "crop")
    assert cropped[0, :, 14:18].max() < 40 and cropped[0, :, :4].min() > 150
    with pytest.raises(InputError, match="crop, pad, resize"):
        fit_frames(frames, 32, 32, "stretch")


def test_frames_tensor_round_trip():
    frames = _moving_square(t=2)
    tensor = frames_to_tensor(frames)
    assert tensor.shape == (3, 2, 48, 64) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(tensor_to_frames(tensor), frames)
    assert tensor_to_frames(torch.full((3, 1, 2, 2), 5.0)).max() == 255  # out-of-range values clamp


def test_contact_sheet_strip_and_gif_are_written(tmp_path):
    a, b = _moving_square(t=9), _moving_square(t=5, h=32, w=32)
    sheet = contact_sheet([a, b], frames_per_clip=4, gap=2)
    assert sheet.shape == (48 + 2 + 48, 4 * 66 - 2, 3)
    strip = save_strip(tmp_path / "docs" / "strip.png", a, count=3)
    assert Image.open(strip).size == (3 * 66 - 2, 48)
    gif = save_gif(tmp_path / "anim.gif", a, fps=10)
    with Image.open(gif) as image:
        assert image.n_frames == 9 and image.info["duration"] == 100
