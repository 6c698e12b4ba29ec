"""C2PA manifests: sign a video or image in place with c2pa-python, and read one back with a verdict."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import c2pa

from kinema import __version__
from kinema.errors import InputError, file_error
from kinema.provenance.keys import SigningKey, trust_anchors_pem

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MODEL_ASSERTION = "org.kinema.model"
MIME_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# Operations that derive from an input video: the input opened and edited, or placed into a new creation.
DERIVED_FROM_ONE = {"extend", "edit"}
COMPOSED_OF_INPUTS = {"interpolate", "connect"}
# Room a signed copy needs beyond the file itself: the manifest, certificate chain and ingredients' claims
# (about 3 KiB for kinema's), with margin. Signing writes a whole new copy before the old one is replaced.
SIGNING_HEADROOM = 64 << 10


def _too_little_room(path: Path) -> bool:
    """True when the folder of `path` has no room for a signed copy of it."""
    try:
        return shutil.disk_usage(path.parent).free < path.stat().st_size + SIGNING_HEADROOM
    except OSError:
        return False


@dataclass
class ProvenanceInfo:
    """What a manifest says about how a file was made."""

    operation: str = "generate"  # generate | extend | edit | interpolate | connect | image
    checkpoint_id: str = "unknown"
    checkpoint_sha256: str = ""
    inputs: list[str] = field(default_factory=list)  # input videos/images, in order
    seed: int | None = None
    watermark_id: int | None = None  # the id the pixels carry, so the two signals can be tied together


@dataclass
class ManifestReport:
    """The C2PA verdict on one file."""

    present: bool
    valid: bool = False  # signature and content hash check out
    trusted: bool = False  # signer chains to the local kinema root or a configured trust anchor
    tampered: bool = False  # the content no longer matches the signed hash
    claims: dict = field(default_factory=dict)
    error: str | None = None


def _mime(path: Path) -> str:
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise InputError(f"{path}: cannot carry a C2PA manifest here; expected one of {', '.join(MIME_TYPES)}")
    return mime


def _agent() -> dict:
    return {"name": f"kinema {__version__}"}


def build_manifest(info: ProvenanceInfo, title: str) -> tuple[dict, list[dict]]:
    """The manifest definition and the ingredient definitions for `info` (pure, for tests and review)."""
    ingredients = []
    relationship = "parentOf" if info.operation in DERIVED_FROM_ONE else "componentOf"
    for index, source in enumerate(info.inputs):
        ingredients.append({"title": Path(source).name, "relationship": relationship, "label": f"input-{index}"})
    labels = [ingredient["label"] for ingredient in ingredients]
    if info.operation in DERIVED_FROM_ONE and ingredients:
        actions = [
            {"action": "c2pa.opened", "softwareAgent": _agent(), "parameters": {"ingredientIds": labels[:1]}},
            {"action": "c2pa.edited", "softwareAgent": _agent(), "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
             "description": f"kinema {info.operation}"},
        ]
    else:
        actions = [{"action": "c2pa.created", "softwareAgent": _agent(), "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "description": f"kinema {info.operation}"}]
        if ingredients:
            actions.append({"action": "c2pa.placed", "softwareAgent": _agent(), "parameters": {"ingredientIds": labels}})
    model = {"checkpoint_id": info.checkpoint_id, "checkpoint_sha256": info.checkpoint_sha256, "operation": info.operation}
    for name in ("seed", "watermark_id"):
        if getattr(info, name) is not None:
            model[name] = int(getattr(info, name))
    manifest = {
        "claim_generator_info": [{"name": "kinema", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": MODEL_ASSERTION, "data": model},
        ],
    }
    return manifest, ingredients


def sign_file(path: str | os.PathLike, info: ProvenanceInfo, key: SigningKey) -> Path:
    """Embed a signed C2PA manifest into an MP4, PNG or JPEG in place (temp file, then rename)."""
    path = Path(path)
    mime = _mime(path)
    manifest, ingredients = build_manifest(info, path.name)
    if _too_little_room(path):  # c2pa reports a full disk only as an opaque I/O error: check first
        raise file_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path)
    try:
        signer_info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, key.cert_chain_pem(), key.private_key_pem(), None)
        signer = c2pa.Signer.from_info(signer_info)
    except OSError as exc:
        raise InputError(f"cannot read the signing key or certificate ({exc.strerror or exc})") from None
    except c2pa.C2paError as exc:
        raise InputError(f"{key.cert_chain_path}: the signing certificate or key is not usable for C2PA ({exc})") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))  # the signed file keeps the original's permissions
        with c2pa.Builder(manifest) as builder:
            for source, ingredient in zip(info.inputs, ingredients, strict=True):
                source = Path(source)
                with open(source, "rb") as stream:
                    builder.add_ingredient(ingredient, _mime(source), stream)
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                builder.sign(signer, mime, src, dst)
        os.replace(tmp, path)
    except c2pa.C2paError as exc:
        if _too_little_room(path):  # the disk filled while signing (another writer, or a large manifest)
            raise file_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path) from None
        raise InputError(f"{path}: C2PA signing failed ({exc})") from None
    except OSError as exc:  # writing the signed copy (a full disk surfaces when it is flushed and closed)
        raise file_error(exc, path) from None
    finally:
        signer.close()
        Path(tmp).unlink(missing_ok=True)
    return path


def _claims(manifest: dict) -> dict:
    claims: dict = {"signer": manifest.get("signature_info", {}).get("common_name"),
                    "issuer": manifest.get("signature_info", {}).get("issuer"),
                    "claim_generator": manifest.get("claim_generator_info", [{}])[0].get("name")}
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            claims["actions"] = [
                {k: a[k] for k in ("action", "digitalSourceType", "softwareAgent", "description") if k in a}
                for a in assertion.get("data", {}).get("actions", [])
            ]
        elif assertion.get("label") == MODEL_ASSERTION:
            claims["model"] = assertion.get("data", {})
    claims["ingredients"] = [
        {"title": i.get("title"), "relationship": i.get("relationship")} for i in manifest.get("ingredients", [])
    ]
    return claims


def read_manifest(path: str | os.PathLike) -> ManifestReport:
    """Read and validate the active C2PA manifest; an absent manifest is a report, not an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    anchors = trust_anchors_pem()
    settings = {"verify": {"verify_trust": bool(anchors)}}
    if anchors:
        settings["trust"] = {"trust_anchors": anchors}
    try:
        with c2pa.Context(c2pa.Settings.from_dict(settings)) as context, c2pa.Reader(str(path), context=context) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if type(exc).__name__ in {"ManifestNotFound", "_C2paManifestNotFound"} or "ManifestNotFound" in str(exc):
            return ManifestReport(present=False)
        return ManifestReport(present=False, error=f"C2PA data unreadable ({exc})")
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    if not active:
        return ManifestReport(present=False)
    results = store.get("validation_results", {}).get("activeManifest", {})
    codes = {item.get("code", "") for item in results.get("failure", [])}
    success = {item.get("code", "") for item in results.get("success", [])}
    trusted = "signingCredential.trusted" in success
    tampered = any(code.endswith(".mismatch") or "Hash" in code for code in codes)
    integrity_failures = {code for code in codes if code != "signingCredential.untrusted"}
    return ManifestReport(
        present=True,
        valid=not integrity_failures,
        trusted=trusted,
        tampered=tampered,
        claims=_claims(active),
        error="; ".join(sorted(codes)) or None,
    )
