"""Video and image input/output: MP4 through PyAV, frames as arrays and tensors, docs strips."""

from kinema.io.frames import fit_frames, frames_to_tensor, tensor_to_frames
from kinema.io.sheets import contact_sheet, save_gif, save_strip
from kinema.io.video import (
    VIDEO_SUFFIXES,
    Video,
    prepare_output,
    read_image,
    read_media,
    read_video,
    write_image,
    write_video,
)

__all__ = [
    "VIDEO_SUFFIXES",
    "Video",
    "contact_sheet",
    "fit_frames",
    "frames_to_tensor",
    "prepare_output",
    "read_image",
    "read_media",
    "read_video",
    "save_gif",
    "save_strip",
    "tensor_to_frames",
    "write_image",
    "write_video",
]
