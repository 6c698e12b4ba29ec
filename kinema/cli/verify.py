"""`kinema verify FILE`: report the C2PA manifest and the watermark; exit 0 if kinema made it, 1 if not."""

from __future__ import annotations

import argparse
import json

from kinema.provenance import VerifyReport, verify


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def format_report(report: VerifyReport) -> str:
    manifest, mark = report.manifest, report.watermark
    lines = [f"{report.path}: {'kinema-generated' if report.kinema_generated else 'no kinema signal found'}"]
    if manifest.present:
        lines.append(
            f"  C2PA manifest: present; signature valid: {_yes(manifest.valid)}; signer trusted: {_yes(manifest.trusted)}; "
            f"tampered: {_yes(manifest.tampered)}"
        )
        claims = manifest.claims
        lines.append(f"    signer: {claims.get('signer')} ({claims.get('issuer')})")
        for action in claims.get("actions", []):
            source = action.get("digitalSourceType", "").rsplit("/", 1)[-1]
            lines.append(f"    action: {action.get('action')}{f' ({source})' if source else ''}")
        if claims.get("model"):
            lines.append("    model: " + ", ".join(f"{k}={v}" for k, v in claims["model"].items()))
        for ingredient in claims.get("ingredients", []):
            lines.append(f"    ingredient: {ingredient.get('title')} ({ingredient.get('relationship')})")
        if manifest.error:
            lines.append(f"    validation failures: {manifest.error}")
    else:
        lines.append("  C2PA manifest: none")
    if mark.found:
        payload = mark.payload_id if mark.payload_id is not None else "unreadable"
        lines.append(f"  watermark: found (p = {mark.p_value:.2g}); id: {payload}; tag ok: {_yes(mark.tag_ok)}")
    else:
        lines.append(f"  watermark: not found (p = {mark.p_value:.2g}, {report.frames_checked} frames checked)")
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def run_verify(args: argparse.Namespace) -> int:
    report = verify(args.file)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.kinema_generated else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a video or image for kinema's C2PA manifest and watermark",
        description="Report the C2PA manifest (signature, trust, tampering, claims) and the invisible watermark. "
        "Exit 0 when either says kinema made the file, 1 when neither does, 2 when the file cannot be read.",
    )
    parser.add_argument("file", help="MP4, PNG or JPEG")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_verify)
