"""Find the world's objects in any video by their palette colours and track them frame by frame.

Shading scales a face's RGB by 0.7-1.0 and a lossy autoencoder blurs edges towards the floor; both keep the
hue, so pixels are labelled by nearest palette hue among those saturated enough not to be floor. A colour's
connected component counts only if it is big enough and holds a solid block (2 rows by 3 columns) of that colour,
which drops speckle from noise and decoder artefacts while keeping every pixel of a real object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from kinema.world import PALETTE

COLOURS = tuple(PALETTE)
MAX_HUE_DISTANCE = 20.0  # degrees; palette hues are 24-76 degrees apart
MIN_SATURATION = 0.3  # floors are at most ~0.2
MIN_VALUE = 0.2
EIGHT_CONNECTED = np.ones((3, 3), bool)
CORE = np.ones((2, 3), bool)  # 2 rows x 3 columns: a paint trail seen edge-on is only 2-3 pixels tall at 64x64


def hue_saturation_value(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSV of uint8 RGB (..., 3): hue in degrees [0, 360), saturation and value in [0, 1]."""
    rgb = frames.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = rgb.max(-1), rgb.min(-1)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(high == r, ((g - b) / safe) % 6.0, np.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = np.where(chroma > 0, hue * 60.0, 0.0)
    saturation = np.where(high > 0, chroma / np.where(high > 0, high, 1.0), 0.0)
    return hue, saturation, high


PALETTE_HUES = hue_saturation_value(np.array([PALETTE[c] for c in COLOURS], np.uint8))[0]


def hue_offset(hue: np.ndarray, reference: np.ndarray | float) -> np.ndarray:
    """Signed hue difference in degrees, wrapped to [-180, 180)."""
    return (hue - reference + 180.0) % 360.0 - 180.0


def label_pixels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palette index per pixel (-1 for none) and each pixel's hue offset from its palette colour."""
    hue, saturation, value = hue_saturation_value(frames)
    offsets = hue_offset(hue[..., None], PALETTE_HUES)  # (..., colours)
    nearest = np.abs(offsets).argmin(-1)
    offset = np.take_along_axis(offsets, nearest[..., None], -1)[..., 0]
    ok = (np.abs(offset) <= MAX_HUE_DISTANCE) & (saturation >= MIN_SATURATION) & (value >= MIN_VALUE)
    return np.where(ok, nearest, -1).astype(np.int8), offset


def min_component_pixels(height: int, width: int) -> int:
    """Smallest blob that counts as an object or a mark: 0.15% of the frame, at least 6 pixels."""
    return max(6, round(0.0015 * height * width))


@dataclass
class Track:
    """One palette colour through a clip; NaN where the colour is absent."""

    colour: str
    present: np.ndarray  # (T,) bool
    area: np.ndarray  # (T,) pixels
    centroid: np.ndarray  # (T, 2) x, y in pixels
    bbox: np.ndarray  # (T, 4) x0, y0, x1, y1 (exclusive)
    components: np.ndarray  # (T,) blobs of at least the minimum size
    hue_offset: np.ndarray  # (T,) mean hue difference from the palette colour, degrees


@dataclass
class Analysis:
    """Every palette colour's track through a clip, plus the cleaned label image."""

    labels: np.ndarray  # (T, H, W) int8 palette index, -1 for none
    tracks: dict[str, Track]

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.labels.shape[2]), int(self.labels.shape[1])

    def present(self, colour: str) -> np.ndarray:
        """(T,) whether the colour is seen in each frame."""
        return self.tracks[colour].present


def _empty_track(colour: str, frames: int) -> Track:
    nan = np.full(frames, np.nan)
    return Track(colour, np.zeros(frames, bool), np.zeros(frames), np.stack([nan, nan], 1),
                 np.stack([nan] * 4, 1), np.zeros(frames, int), nan.copy())


def analyze(frames: np.ndarray) -> Analysis:
    """Segment and track every palette colour in uint8 frames (T, H, W, 3)."""
    frames = np.asarray(frames)
    count, height, width = frames.shape[:3]
    raw, offset = label_pixels(frames)
    labels = np.full(raw.shape, -1, np.int8)
    smallest = min_component_pixels(height, width)
    tracks = {c: _empty_track(c, count) for c in COLOURS}
    pixel_counts = np.stack([(raw == i).reshape(count, -1).sum(1) for i in range(len(COLOURS))], 1)  # (T, colours)
    ys, xs = np.mgrid[0:height, 0:width]
    for t in range(count):
        for index, colour in enumerate(COLOURS):
            if pixel_counts[t, index] < smallest:
                continue
            colour_mask = raw[t] == index
            blobs, found = ndimage.label(colour_mask, EIGHT_CONNECTED)
            sizes = np.bincount(blobs.ravel(), minlength=found + 1)
            solid = np.unique(blobs[ndimage.binary_erosion(colour_mask, CORE)])
            keep = solid[(solid > 0) & (sizes[solid] >= smallest)]
            if not len(keep):
                continue
            mask = np.isin(blobs, keep)
            labels[t][mask] = index
            track = tracks[colour]
            track.present[t] = True
            track.area[t] = mask.sum()
            track.components[t] = len(keep)
            px, py = xs[mask], ys[mask]
            track.centroid[t] = px.mean(), py.mean()
            track.bbox[t] = px.min(), py.min(), px.max() + 1, py.max() + 1
            track.hue_offset[t] = offset[t][mask].mean()
    return Analysis(labels, tracks)
