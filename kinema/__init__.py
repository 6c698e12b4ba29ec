"""kinema: open text-to-video with a spacetime diffusion transformer."""

__version__ = "0.1.0"
