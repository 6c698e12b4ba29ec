"""`kinema world render|show`: render physics-world clips to a folder, and look at them."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from kinema.errors import InputError


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height); InputError names the form that works."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 128x128 or 224x128")
    return int(match[1]), int(match[2])


def _render(args: argparse.Namespace) -> int:
    from kinema.world import render_dataset

    width, height = parse_size(args.size)
    out = render_dataset(
        args.out, args.count, width, height, args.fps, args.seconds, args.frames, args.family, args.seed,
        args.workers, progress=not args.quiet,
    )
    print(f"wrote {args.count} clips to {out} (clips/, truth/, captions.jsonl)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from kinema.io import contact_sheet, read_video, write_image

    folder = Path(args.dir)
    index = folder / "captions.jsonl"
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; render one with `kinema world render --out {folder}`")
    if not index.is_file():
        raise InputError(f"{folder}: has no captions.jsonl; is it a folder made by `kinema world render`?")
    try:
        records = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise InputError(f"{index}: not valid JSON lines ({exc})") from None
    if not records:
        raise InputError(f"{index}: lists no clips")
    if args.rows < 1:
        raise InputError(f"--rows {args.rows}: must be at least 1")
    clips = [read_video(folder / "clips" / f"{r['id']}.mp4").frames for r in records[: args.rows]]
    write_image(args.output, contact_sheet(clips, args.frames))
    for record in records[: args.rows]:
        print(f"{record['id']} [{record['family']}] {record['captions'][0]}")
    print(f"wrote {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `kinema world` and its subcommands."""
    from kinema.world import EXTRA_FAMILIES, FAMILIES

    world = subparsers.add_parser(
        "world",
        help="render the procedural physics world (training data and evaluation ground truth)",
        description="The procedural physics world: rigid bodies simulated by PyBullet, rendered with captions "
        "written from what happened and exact per-frame ground truth.",
    )
    commands = world.add_subparsers(dest="world_command", metavar="SUBCOMMAND")
    world.set_defaults(handler=lambda args: world.print_help() or 2)

    render = commands.add_parser(
        "render",
        help="render N clips to a folder",
        description="Render clips to DIR/clips/*.mp4, DIR/truth/*.json and DIR/captions.jsonl using all cores.",
        epilog="example: kinema world render --count 100 --out data/world --size 128x128 --seconds 2",
    )
    render.add_argument("--count", type=int, required=True, help="number of clips")
    render.add_argument("--out", required=True, help="output folder (created if missing)")
    render.add_argument("--size", default="128x128", help="WIDTHxHEIGHT, multiples of 16 from 64 to 512 (default 128x128)")
    render.add_argument("--fps", type=float, default=8.0, help="frames per second, 1 to 60 (default 8)")
    render.add_argument("--seconds", type=float, default=2.0, help="clip duration in seconds (default 2)")
    render.add_argument("--frames", type=int, default=None, help="exact frame count instead of --seconds (the model wants 1+4k, e.g. 17)")
    render.add_argument("--family", default=None, help=f"only this scene family: {', '.join(FAMILIES)} (default: all of these), or one not drawn by default: {', '.join(EXTRA_FAMILIES)}")
    render.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same clips (default 0)")
    render.add_argument("--workers", type=int, default=None, help="processes to render with (default: all cores)")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render.set_defaults(handler=_render)

    show = commands.add_parser(
        "show",
        help="contact sheet of clips from a rendered folder",
        description="Write a contact sheet (one row per clip, evenly spaced frames) and print each clip's first caption.",
        epilog="example: kinema world show data/world -o sheet.png --rows 8",
    )
    show.add_argument("dir", help="folder written by `kinema world render`")
    show.add_argument("-o", "--output", required=True, help="PNG to write")
    show.add_argument("--rows", type=int, default=8, help="number of clips, one per row (default 8)")
    show.add_argument("--frames", type=int, default=8, help="frames per row (default 8)")
    show.set_defaults(handler=_show)
