"""The procedural physics world: short clips of rigid bodies with captions and exact ground truth.

The engine is PyBullet (`p.DIRECT` with its software TinyRenderer, no shadows): it installs as a wheel,
needs no GPU or EGL, and renders ~300 frames/s at 128x128 on one CPU core. MuJoCo renders faster but
needs an EGL/OSMesa GL stack that CI machines may lack.
"""

from kinema.world.clip import Clip, render_clip
from kinema.world.dataset import WorldStream, render_dataset
from kinema.world.families import ALL_FAMILIES, EXTRA_FAMILIES, FAMILIES
from kinema.world.palette import FLOOR_COLOURS, PALETTE, SHAPES, SIZES

__all__ = ["ALL_FAMILIES", "EXTRA_FAMILIES", "FAMILIES", "FLOOR_COLOURS", "PALETTE", "SHAPES", "SIZES", "Clip", "WorldStream", "render_clip", "render_dataset"]
