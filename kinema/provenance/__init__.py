"""Provenance: an invisible watermark in the pixels and a signed C2PA manifest in the file, and checking both."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kinema.errors import InputError
from kinema.io import read_image, read_video, write_image, write_video
from kinema.io.video import IMAGE_SUFFIXES
from kinema.provenance.keys import NO_KEY_HINT, SigningKey, find_signing_key, init_keys
from kinema.provenance.manifest import ManifestReport, ProvenanceInfo, read_manifest, sign_file
from kinema.provenance.watermark import WatermarkResult, detect_watermark, embed_watermark

__all__ = [
    "ManifestReport",
    "ProvenanceInfo",
    "ProvenanceStatus",
    "SigningKey",
    "VerifyReport",
    "WatermarkResult",
    "detect_watermark",
    "embed_watermark",
    "finalize_image",
    "finalize_video",
    "find_signing_key",
    "init_keys",
    "read_manifest",
    "sign_video",
    "verify",
]

log = logging.getLogger(__name__)
MAX_VERIFY_FRAMES = 240  # the watermark is in every frame; more adds time, not certainty


@dataclass
class ProvenanceStatus:
    """What was done to a file: watermark (with its id), signature, and a note when signing was skipped."""

    path: Path
    watermarked: bool = False
    payload_id: int | None = None
    signed: bool = False
    message: str = ""


@dataclass
class VerifyReport:
    """Both signals for one file."""

    path: Path
    manifest: ManifestReport
    watermark: WatermarkResult
    frames_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def c2pa_says_kinema(self) -> bool:
        return self.manifest.present and self.manifest.valid and self.manifest.claims.get("claim_generator") == "kinema"

    @property
    def kinema_generated(self) -> bool:
        """True when either signal says kinema made the file."""
        return self.c2pa_says_kinema or self.watermark.found

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "kinema_generated": self.kinema_generated,
            "c2pa": asdict(self.manifest),
            "watermark": asdict(self.watermark),
            "frames_checked": self.frames_checked,
            "notes": self.notes,
        }


def sign_video(path: str | os.PathLike, info: ProvenanceInfo, key: SigningKey | None = None) -> ProvenanceStatus:
    """Sign an MP4 (or PNG/JPEG) in place with a C2PA manifest; without a key, say how to get one."""
    path = Path(path)
    key = key or find_signing_key()
    if key is None:
        return ProvenanceStatus(path, signed=False, message=f"not signed: no signing key; {NO_KEY_HINT}")
    sign_file(path, info, key)
    log.info("signed %s with %s", path, key.cert_chain_path)
    return ProvenanceStatus(path, signed=True, message=f"signed with {key.cert_chain_path}")


def _new_payload_id() -> int:
    return secrets.randbits(24)


def _finalize(path: Path, info: ProvenanceInfo, write, frames: np.ndarray, watermark: bool, sign: bool,
              key: SigningKey | None) -> ProvenanceStatus:
    payload_id = _new_payload_id() if watermark else None
    if watermark:
        frames = embed_watermark(frames, payload_id)
        info = ProvenanceInfo(**{**asdict(info), "watermark_id": payload_id})
    write(path, frames)
    status = sign_video(path, info, key) if sign else ProvenanceStatus(path, message="not signed: signing turned off")
    status.watermarked, status.payload_id = watermark, payload_id
    return status


def finalize_video(frames: np.ndarray, fps: float, path: str | os.PathLike, info: ProvenanceInfo,
                   watermark: bool = True, sign: bool = True, key: SigningKey | None = None) -> ProvenanceStatus:
    """Watermark uint8 (T, H, W, 3) frames, write them as MP4, and sign the file when a key is available."""
    return _finalize(Path(path), info, lambda p, f: write_video(p, f, fps), frames, watermark, sign, key)


def finalize_image(frame: np.ndarray, path: str | os.PathLike, info: ProvenanceInfo,
                   watermark: bool = True, sign: bool = True, key: SigningKey | None = None) -> ProvenanceStatus:
    """Watermark one uint8 (H, W, 3) frame, write it as PNG or JPEG, and sign it when a key is available."""
    return _finalize(Path(path), info, write_image, frame, watermark, sign, key)


def verify(path: str | os.PathLike) -> VerifyReport:
    """Check an MP4, PNG or JPEG for a kinema C2PA manifest and the kinema watermark."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected an MP4, PNG or JPEG file")
    manifest = read_manifest(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes); give the MP4, PNG or JPEG file to check")
    if manifest.error and not manifest.present:
        raise InputError(f"{path}: corrupt or truncated, or not an MP4, PNG or JPEG; give the video or image "
                         f"file to check ({manifest.error})")
    media = read_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else read_video(path, MAX_VERIFY_FRAMES)
    report = VerifyReport(path, manifest, detect_watermark(media.frames), frames_checked=media.num_frames)
    claimed_id = manifest.claims.get("model", {}).get("watermark_id")
    if claimed_id is not None and report.watermark.payload_id not in (None, claimed_id):
        report.notes.append(f"watermark id {report.watermark.payload_id} differs from the manifest's {claimed_id}")
    return report
