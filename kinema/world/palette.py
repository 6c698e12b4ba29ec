"""Named colours, shapes and sizes of the world, and the sizes in metres they stand for."""

from __future__ import annotations

# Object colours as rendered under flat light (ambient 1, diffuse 0); the renderer shades faces by 0.7-1.0 of
# these, so nearest-hue matching segments them. Well separated in hue so the names stay unambiguous.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 175, 60),
    "cyan": (30, 200, 210),
    "blue": (40, 80, 225),
    "purple": (140, 60, 200),
    "pink": (245, 110, 185),
}

# Floors are muted and low in saturation so no floor is mistaken for an object colour.
FLOOR_COLOURS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "sand": (168, 158, 138),
    "slate": (96, 106, 118),
    "sage": (124, 136, 118),
    "stone": (150, 146, 150),
}

SHAPES = ("sphere", "cube", "cylinder")
SIZES = ("small", "large")

# Radius (sphere, cylinder) or half edge (cube) in metres; cylinders stand upright, as tall as they are wide.
SIZE_METRES = {"small": 0.25, "large": 0.36}


def rgba(colour: tuple[int, int, int]) -> list[float]:
    """uint8 RGB -> PyBullet's float RGBA."""
    return [c / 255.0 for c in colour] + [1.0]
