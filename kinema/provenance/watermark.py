"""Invisible watermark: a keyed ±1 cell pattern on luma, found again by correlation after crops, scaling and re-encoding.

The frame is divided into GRID x GRID cells relative to its size (so scaling does not move them). Most cells,
chosen by the key, carry the 16-bit kinema tag; the rest carry a 24-bit id and its CRC-8, each bit spread over
many cells. The pattern is the same in every frame, so averaging frames cancels moving content and keeps it.

Detection removes the local median from each frame's luma (a median keeps content edges, so they cancel), clips what
is left of them frame by frame and averages over time; for each candidate crop (visible fraction `f` of the original
frame, then any offset) it sums the residual per cell, whitens the sums (each minus its neighbours' mean: content
varies slowly from cell to cell, the chips do not) and correlates them with the tag cells. The whitened sums depend
on the content alone, and given the content the key's chips are independent fair signs, so the chance that a random
key reaches a z-score `z` is at most 3.18 times the standard normal tail at `z` whatever the content (Bentkus &
Dzindzalieta 2015, the tight constant for weighted sums of random signs); a union bound over every candidate tried
gives the p-value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve, gaussian_filter, median_filter, uniform_filter
from scipy.signal import correlate
from scipy.special import ndtr

GRID = 40  # cells per side, relative to the frame
CELL = 3  # canonical pixels per cell when aligning a received frame
KEY = b"kinema-watermark-v1"
TAG = 0x4B4E  # "KN"
TAG_BITS, ID_BITS, CRC_BITS = 16, 24, 8
STRENGTH = 2.85  # RMS luma change in 8-bit levels before rounding, then scaled to spend the PSNR budget
VISIBLE_FRACTIONS = np.round(np.arange(1.0, 0.6999, -0.025), 3)  # visible share of the original side, searched
P_THRESHOLD = 1e-6
# Bentkus & Dzindzalieta (2015): a unit-norm weighted sum of fair signs exceeds x with probability at most
# this many times the standard normal tail at x, for every x.
RADEMACHER_TAIL_FACTOR = 1 / (4 * ndtr(-np.sqrt(2)))
MIN_PSNR = 40.1  # dB, marked against clean
MAX_MSE = 255.0**2 / 10 ** (MIN_PSNR / 10)
TAG_SHARE = 0.75  # share of cells carrying the known tag, which is all that detection correlates with
MASK_GAIN = 0.3  # how much more strength textured areas get than flat ones
SMOOTH_CELLS = 0.3  # blur of the cell pattern, in cells
MEDIAN_CELLS = 3.0  # width of the local median removed before correlating, in cells
WHITEN = np.full((3, 3), -1 / 8)  # cell sums minus their neighbours' mean: content varies slowly, chips do not
WHITEN[1, 1] = 1.0
CLIP_SIGMAS = 3.0  # residual beyond this many robust standard deviations is content, not mark


@dataclass
class WatermarkResult:
    """Whether the kinema watermark is present, its id, and how unlikely the match is without it."""

    found: bool
    payload_id: int | None
    tag_ok: bool
    p_value: float
    z_score: float = 0.0


def _layout() -> tuple[np.ndarray, np.ndarray]:
    """Per cell: a chip sign (+1/-1) and the payload bit it carries (0..15 tag, 16.. id and CRC)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(KEY).digest()[:8], "little"))
    chips = rng.choice([-1.0, 1.0], size=(GRID, GRID))
    order = rng.permutation(GRID * GRID)
    bit_of_cell = np.empty(GRID * GRID, dtype=np.int64)
    tag_cells = int(GRID * GRID * TAG_SHARE)
    bit_of_cell[order[:tag_cells]] = np.arange(tag_cells) % TAG_BITS
    bit_of_cell[order[tag_cells:]] = TAG_BITS + np.arange(GRID * GRID - tag_cells) % (ID_BITS + CRC_BITS)
    return chips, bit_of_cell.reshape(GRID, GRID)


CHIPS, BIT_OF_CELL = _layout()
TAG_MASK = (BIT_OF_CELL < TAG_BITS).astype(np.float64)


def _crc8(value: int, bits: int) -> int:
    crc = 0
    for i in reversed(range(bits)):
        top = ((crc >> 7) & 1) ^ ((value >> i) & 1)
        crc = ((crc << 1) & 0xFF) ^ (0x07 if top else 0)
    return crc


def _bits(value: int, count: int) -> list[int]:
    return [(value >> i) & 1 for i in reversed(range(count))]


def _message(payload_id: int) -> np.ndarray:
    """±1 per payload bit: tag, id, CRC of the id."""
    payload_id &= (1 << ID_BITS) - 1
    bits = _bits(TAG, TAG_BITS) + _bits(payload_id, ID_BITS) + _bits(_crc8(payload_id, ID_BITS), CRC_BITS)
    return np.array(bits, dtype=np.float64) * 2 - 1


def _luma(frames: np.ndarray) -> np.ndarray:
    return frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114


def _cell_pattern(height: int, width: int, cells: np.ndarray) -> np.ndarray:
    """Nearest-cell upsampling of a (GRID, GRID) array to (height, width)."""
    rows = np.arange(height) * GRID // height
    cols = np.arange(width) * GRID // width
    return cells[rows[:, None], cols[None, :]]


def embed_watermark(frames: np.ndarray, payload_id: int) -> np.ndarray:
    """Add the watermark carrying `payload_id` (24 bits) to uint8 frames (T, H, W, 3) or one (H, W, 3)."""
    single = frames.ndim == 3
    video = (frames[None] if single else frames).astype(np.float32)
    _, height, width, _ = video.shape
    cells = CHIPS * _message(payload_id)[BIT_OF_CELL]
    pattern = gaussian_filter(_cell_pattern(height, width, cells), sigma=SMOOTH_CELLS * height / GRID)
    pattern /= np.sqrt(np.mean(pattern**2))
    # Stronger where texture hides it, weaker on flat areas where it would show.
    luma = _luma(video)
    local_std = np.sqrt(np.maximum(uniform_filter(luma**2, (1, 5, 5)) - uniform_filter(luma, (1, 5, 5)) ** 2, 0))
    mask = 1.0 + MASK_GAIN * local_std / (local_std + 6.0)
    mask /= np.sqrt(np.mean(mask**2))
    delta = (STRENGTH * mask * pattern[None])[..., None]
    marked = np.clip(np.rint(video + delta), 0, 255)
    # Spend the whole MIN_PSNR budget: rounding and clipping make the cost of a given strength content-dependent.
    for _ in range(6):
        mse = np.mean((marked - video) ** 2)
        if 0.97 * MAX_MSE <= mse <= MAX_MSE:
            break
        delta *= np.sqrt(0.985 * MAX_MSE / mse)
        marked = np.clip(np.rint(video + delta), 0, 255)
    while np.mean((marked - video) ** 2) > MAX_MSE:
        delta *= 0.98
        marked = np.clip(np.rint(video + delta), 0, 255)
    marked = marked.astype(np.uint8)
    return marked[0] if single else marked


def _clip_outliers(residual: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    limit = CLIP_SIGMAS * (np.median(np.abs(residual), axis=axes, keepdims=True) / 0.6745 + 1e-6)
    return np.clip(residual, -limit, limit)


def _residual(frames: np.ndarray) -> np.ndarray:
    """Per-frame luma minus its local median, edges clipped frame by frame, then averaged over time."""
    video = frames[None] if frames.ndim == 3 else frames
    luma = _luma(video.astype(np.float32))
    # A median keeps content edges, so they cancel in the residual, while the chips, random within the window, do not.
    size = max(3, int(round(MEDIAN_CELLS * luma.shape[1] / GRID)) | 1)
    local = median_filter(luma, size=(1, size, size), mode="reflect")
    # Clipping each frame before averaging keeps a moving edge from leaving a trail in the mean.
    residual = _clip_outliers(luma - local, axes=(1, 2))
    return _clip_outliers(residual.mean(axis=0).astype(np.float64), axes=(0, 1))


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def detect_watermark(frames: np.ndarray) -> WatermarkResult:
    """Look for the watermark in uint8 frames (T, H, W, 3) or one (H, W, 3); the p-value holds whatever the content."""
    residual = _residual(np.asarray(frames))
    tag_cells = CHIPS * _message(0)[BIT_OF_CELL] * TAG_MASK
    canonical = GRID * CELL
    best = (-np.inf, None)
    candidates = 0
    for fraction in VISIBLE_FRACTIONS:
        aligned = _resize(residual, int(round(fraction * canonical)))
        for dy in range(CELL):
            for dx in range(CELL):
                sub = aligned[dy:, dx:]
                gh, gw = sub.shape[0] // CELL, sub.shape[1] // CELL
                sums = sub[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL).sum(axis=(1, 3))
                sums = convolve(sums, WHITEN, mode="reflect")
                numerator = correlate(tag_cells, sums, mode="valid")
                energy = correlate(TAG_MASK, sums**2, mode="valid")
                z = numerator / np.sqrt(energy + 1e-12)
                candidates += z.size
                oy, ox = np.unravel_index(np.argmax(z), z.shape)
                if z[oy, ox] > best[0]:
                    best = (float(z[oy, ox]), (sums, oy, ox))
    z, (sums, oy, ox) = best
    p_value = float(min(1.0, candidates * RADEMACHER_TAIL_FACTOR * ndtr(-z)))
    window = (slice(oy, oy + sums.shape[0]), slice(ox, ox + sums.shape[1]))
    soft = np.bincount(
        BIT_OF_CELL[window].ravel(), weights=(sums * CHIPS[window]).ravel(), minlength=TAG_BITS + ID_BITS + CRC_BITS
    )
    bits = (soft > 0).astype(int)
    tag = int("".join(map(str, bits[:TAG_BITS])), 2)
    payload = int("".join(map(str, bits[TAG_BITS : TAG_BITS + ID_BITS])), 2)
    crc = int("".join(map(str, bits[TAG_BITS + ID_BITS :])), 2)
    found = p_value <= P_THRESHOLD
    payload_ok = found and crc == _crc8(payload, ID_BITS)
    return WatermarkResult(found, payload if payload_ok else None, tag == TAG, p_value, z)
