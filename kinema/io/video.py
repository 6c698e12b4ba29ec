"""Read and write MP4 (H.264, yuv420p) and still images; every failure names the file."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from kinema.errors import InputError, file_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_SUFFIXES = (".mp4", ".mov")  # what write_video makes and a C2PA manifest can be signed into


@dataclass
class Video:
    """Frames as uint8 (T, H, W, 3) with their frame rate."""

    frames: np.ndarray
    fps: float
    path: str | None = None  # where it was read from, for provenance ingredients

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


def _check_frames(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise InputError(f"{what}: expected frames shaped (T, H, W, 3) with T >= 1, got {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise InputError(f"{what}: expected uint8 frames, got {frames.dtype}")
    return frames


def _open_error(path: Path, exc: Exception) -> InputError:
    if not path.exists():
        return InputError(f"{path}: no such file")
    if path.is_dir():
        return InputError(f"{path}: is a folder, expected a video or image file")
    return InputError(f"{path}: not a readable video ({type(exc).__name__}: {exc}); expected an MP4/MOV/WebM video")


# Decoded frames held at once: a few MB of H.264 can expand to many GB, and every input is decoded whole.
MAX_DECODED_BYTES = 2 * 1024**3


class TooLargeError(InputError):
    """A readable video with more frames than kinema will hold in memory."""


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> Video:
    """Decode every frame of a video file as RGB uint8 (at most `MAX_DECODED_BYTES` of them)."""
    import av  # PyAV loads with the first video read or written, not with kinema.io
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise _open_error(path, exc) from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: contains no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(8)
        frames = []
        try:
            decoded = 0
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                decoded += frames[-1].nbytes
                if max_frames is not None and len(frames) >= max_frames:
                    break
                if decoded > MAX_DECODED_BYTES:
                    raise TooLargeError(
                        f"{path}: too long or too large to decode whole (over {MAX_DECODED_BYTES >> 30} GiB of frames "
                        f"after {len(frames)} frames of {frame.width}x{frame.height}); kinema makes videos of at most "
                        "256 pixels a side, so shrink or trim it first, e.g. ffmpeg -i IN -vf scale=256:-2 -t 20 OUT.mp4")
        except (av.error.FFmpegError, ValueError) as exc:
            if not frames:
                raise InputError(f"{path}: video data is corrupt or truncated ({exc})") from None
    if not frames:
        raise InputError(f"{path}: video has no decodable frames (empty or truncated file)")
    return Video(np.stack(frames), float(rate), str(path))


def read_image(path: str | os.PathLike) -> Video:
    """Read a still image as a one-frame video (fps 1)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give an image file (PNG, JPEG or WebP)")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}); expected PNG, JPEG or WebP") from None
    return Video(rgb[None].copy(), 1.0, str(path))


def read_media(path: str | os.PathLike, max_frames: int | None = None) -> Video:
    """Read an image or a video (its first `max_frames` frames), deciding by the suffix and then the bytes."""
    path = Path(path)
    expected = "give a video (MP4, MOV, WebM) or an image (PNG, JPEG, WebP)"
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; {expected}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes); {expected}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)
    try:
        return read_video(path, max_frames)
    except TooLargeError:
        raise
    except InputError:
        try:
            return read_image(path)
        except InputError:
            raise InputError(f"{path}: neither a readable video nor a readable image; {expected}") from None


def _output_path(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> Path:
    """`path` checked for writing, its folder created; a symbolic link is followed, so the file it points
    to is replaced rather than the link."""
    path = Path(path).expanduser()
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        example = f", e.g. {path / ('out' + suffixes[0])}" if suffixes else " inside it"
        raise InputError(f"{path}: is a folder; give a file name{example}")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: is not a regular file (a device, pipe or socket); give a file name to write")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{path}: kinema writes {suffixes[0][1:].upper()} here; end the name with "
                         f"{' or '.join(suffixes)}, e.g. out{suffixes[0]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(exc) from None
    return path


def prepare_output(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> Path:
    """Check that a file can be written at `path` before any work is spent on it; returns the path to write.

    `suffixes`, when given, are the file types the caller writes (".mp4", ...). The folder is created and a
    file is made and removed in it, so InputError names what is wrong up front: a folder or a device in
    the way, a file where a folder is needed, no permission, a read-only or full disk.
    """
    path = _output_path(path, suffixes)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as exc:
        raise file_error(exc, path) from None
    os.close(fd)
    os.unlink(probe)
    return path


def _atomic_target(path: Path) -> tuple[Path, int, str]:
    """(path to replace, descriptor, temporary name) for writing `path` all at once."""
    path = _output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise file_error(exc, path) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    return path, fd, tmp


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Encode uint8 (T, H, W, 3) frames as H.264/yuv420p MP4, atomically (temp file, then rename)."""
    import av  # PyAV loads with the first video read or written, not with kinema.io
    path = Path(path)
    frames = _check_frames(frames, str(path))
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise InputError(f"{path}: H.264 needs even width and height, got {width}x{height}")
    if fps is None or not 0 < float(fps) < math.inf:
        raise InputError(f"{path}: fps must be a positive number, got {fps}")
    path, fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for rgb in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise file_error(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write one uint8 (H, W, 3) frame as PNG or JPEG, atomically."""
    path = Path(path)
    frame = _check_frames(frame, str(path))[0]
    path, fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        fmt = "JPEG" if path.suffix.lower() in {".jpg", ".jpeg"} else "PNG"
        Image.fromarray(frame).save(tmp, format=fmt, quality=95)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise file_error(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
