"""`kinema generate | extend | interpolate | fill | connect | edit | demo`: gather options, call the Pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from tqdm import tqdm

from kinema.errors import InputError

PRECISION_CHOICES = ("auto", "fp32", "bf16")  # kinema.pipeline.PRECISIONS, without importing torch for --help
PRECISION_HELP = ("transformer precision: auto (default) runs it under bf16 autocast where bf16 is native (a CPU "
                  "with AVX512-BF16 or AMX, a GPU) and in fp32 elsewhere; fp32 or bf16 to choose. bf16 kept "
                  "the shipped model's evaluation score and saved about a third of the denoising time on such a CPU")

DEMO_PROMPT = "a red sphere rolls from left to right across a grey floor"


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: write it as WIDTHxHEIGHT, e.g. 128x128") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be positive, e.g. 128x128")
    return width, height


def parse_range(text: str) -> tuple[int, int]:
    """'A-B' -> (A, B)."""
    try:
        first, last = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames {text!r}: write a range as FIRST-LAST, e.g. 10-14") from None
    if first > last:
        raise argparse.ArgumentTypeError(f"frames {text!r}: the first frame comes after the last; write e.g. {last}-{first}")
    return first, last


EXIT_CODES = ("exit status: 0 written; 2 bad input (the message names it and what would work); 3 prompt refused; "
              "130 interrupted (143 terminated). The video is put under its name only when complete: an error or an interrupt "
              "leaves no partial file and keeps any file already there.")


def _common(p: argparse.ArgumentParser, output: bool = True) -> None:
    if output:
        p.add_argument("-o", "--output", required=True,
                       help="where to write the video (.mp4 or .mov; a missing folder is created)")
        p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("--checkpoint", help="checkpoint folder (default: the shipped model, or $KINEMA_CHECKPOINT)")
    p.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT, multiples of 16 (default: the checkpoint's, 128x128)")
    p.add_argument("--fps", type=float, help="frames per second, above 0 and up to 60 (default: the checkpoint's, 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed, 0 or more; the same seed gives the same video (default 0)")
    p.add_argument("--steps", type=int, help="sampling steps, 1 to 1000 (default: the checkpoint's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale, 1 (none) to 30 (default: the checkpoint's)")
    p.add_argument("--negative-prompt", default="", metavar="TEXT",
                   help="what the video should not show: guidance steers away from it instead of from the empty "
                        "prompt (no effect with --guidance 1)")
    p.add_argument("--fit", choices=("crop", "pad", "resize"), default="crop",
                   help="how to fit input images/videos of another size (default crop)")
    p.add_argument("--no-sign", action="store_true", help="skip the C2PA manifest (the watermark is still embedded)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transformer: about a minute of compiling first, faster steps after "
                        "(worth it for long videos; needs a C++ compiler on CPU)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="make a video from a prompt (optionally from an image, looped, or a storyboard)",
                              description="Text to video, image to video, seamless loops and storyboards.",
                              epilog='example: kinema generate "a red sphere rolls left" -o out.mp4 --seconds 4. ' + EXIT_CODES)
    p.add_argument("prompt", nargs="?", default="", help="what the video shows")
    p.add_argument("--seconds", type=float, default=2.0, help="duration in seconds (default 2; long videos are made window by window)")
    p.add_argument("--image", help="a still image to animate (PNG/JPEG)")
    p.add_argument("--image-at", choices=("start", "end"), default="start", help="where the image sits (default start)")
    p.add_argument("--loop", action="store_true", help="make the end flow back into the start")
    p.add_argument("--storyboard", help="a TOML file of timed shots: [[shot]] start, end, prompt")
    _common(p)
    p.set_defaults(handler=run_generate)

    p = subparsers.add_parser("extend", help="continue a video forwards (or backwards)",
                              description="Extend a video; its own frames are kept exactly.", epilog=EXIT_CODES)
    p.add_argument("input", help="the video (or image) to extend")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds to add (default 2)")
    p.add_argument("--backward", action="store_true", help="add the new seconds before the video instead of after")
    p.add_argument("--prompt", default="", help="what the new part shows")
    _common(p)
    p.set_defaults(handler=run_extend)

    p = subparsers.add_parser("interpolate", help="raise a video's frame rate by a factor",
                              description="Make in-between frames; the original frames are kept exactly.",
                              epilog=EXIT_CODES)
    p.add_argument("input", help="the video to interpolate (at least two frames)")
    p.add_argument("--factor", type=int, default=2, help="frames per original frame interval (default 2)")
    p.add_argument("--prompt", default="", help="optional description of the video")
    _common(p)
    p.set_defaults(handler=run_interpolate)

    p = subparsers.add_parser("fill", help="regenerate a range of frames from their surroundings",
                              description="Redraw frames FIRST-LAST of a video from the frames around them; the "
                              "others are kept exactly.", epilog=EXIT_CODES)
    p.add_argument("input", help="the video to repair")
    p.add_argument("--frames", type=parse_range, required=True, help="inclusive range to redraw, e.g. 10-14")
    p.add_argument("--prompt", default="", help="optional description of the video")
    _common(p)
    p.set_defaults(handler=run_fill)

    p = subparsers.add_parser("connect", help="join two clips with generated frames between them",
                              description="Make a bridge from the end of FIRST to the start of SECOND; both clips are "
                              "kept exactly.", epilog=EXIT_CODES)
    p.add_argument("first", help="the clip (video or image) that comes first")
    p.add_argument("second", help="the clip (video or image) that comes after the bridge")
    p.add_argument("--seconds", type=float, default=1.0, help="length of the bridge in seconds (default 1); it is made in whole latent frames, 4 video frames each, so it rounds up to 3, 7, 11... frames (1 s at 8 fps: 11)")
    p.add_argument("--prompt", default="", help="what happens in between")
    _common(p)
    p.set_defaults(handler=run_connect)

    p = subparsers.add_parser("edit", help="redraw a video to follow a new prompt (video to video)",
                              description="Noise the video part-way (--strength) and redraw it to follow PROMPT.",
                              epilog=EXIT_CODES)
    p.add_argument("input", help="the video to redraw")
    p.add_argument("prompt", help="what the redrawn video shows")
    p.add_argument("--strength", type=float, default=0.6, help="how far to move from the input, 0-1 (default 0.6)")
    _common(p)
    p.set_defaults(handler=run_edit)

    p = subparsers.add_parser("demo", help="make demo.mp4 from a default prompt with the shipped model",
                              description="Make a 4 s video with the shipped model and default settings "
                              "(what `make demo` runs).")
    p.add_argument("--prompt", default=DEMO_PROMPT, help=f"what the video shows (default {DEMO_PROMPT!r})")
    p.add_argument("-o", "--output", default="demo.mp4", help="where to write it; replaced if it exists (default demo.mp4)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    p.set_defaults(handler=run_demo)


def _pipeline(args):
    from kinema.pipeline import Pipeline

    pipe = Pipeline.from_checkpoint(getattr(args, "checkpoint", None)).set_precision(getattr(args, "precision", "auto"))
    return pipe.compile() if getattr(args, "compile", False) else pipe


def _request(args, **fields):
    from kinema.pipeline import GenerationRequest

    width, height = args.size if args.size else (None, None)
    return GenerationRequest(width=width, height=height, fps=args.fps, seed=args.seed, steps=args.steps,
                             guidance_scale=args.guidance, negative_prompt=args.negative_prompt, fit=args.fit,
                             **fields)


def _check_output(args) -> None:
    """Refuse an output that cannot be written, or that exists without --overwrite, before any work."""
    from kinema.io import VIDEO_SUFFIXES, prepare_output

    if prepare_output(args.output, VIDEO_SUFFIXES).exists() and not args.overwrite:
        raise InputError(f"{args.output}: already exists; pass --overwrite to replace it, or choose another -o")


def _run(args, request) -> int:
    pipe = _pipeline(args)
    bar = tqdm(total=1000, disable=args.quiet or args.json, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def progress(event: dict) -> None:
        if "window" in event:
            bar.set_description(f"window {event['window']}/{event['windows']} step {event['step']}/{event['steps']}")
        bar.n = round(1000 * event["fraction"])
        bar.refresh()

    try:
        result = pipe.generate_to_file(request, args.output, progress=progress, sign=not args.no_sign)
    finally:
        bar.close()  # ends the bar's line, so an error message starts on its own
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {result.path} ({summary['seconds']} s, {summary['size']}, {result.fps:g} fps, seed {result.seed}, "
              f"{result.precision})")
        note = (result.provenance or {}).get("message")
        if note:
            print(note, file=sys.stderr)
    return 0


def _read(path: str):
    from kinema.io import read_media

    return read_media(path)


def run_generate(args) -> int:
    from kinema.io import read_image

    _check_output(args)
    fields: dict = {"prompt": args.prompt, "seconds": args.seconds}
    if args.storyboard:
        fields.update(task="storyboard", shots=load_storyboard(args.storyboard))
        fields["seconds"] = max(shot.end for shot in fields["shots"])
        fields["prompt"] = fields["prompt"] or fields["shots"][0].prompt
    elif args.image:
        fields.update(task="image", image=read_image(args.image).frames[0], image_at=args.image_at)
    elif args.loop:
        fields.update(task="loop")
    if not fields["prompt"].strip() and not args.image:
        raise InputError("give a prompt, e.g. kinema generate \"a red sphere rolls left\" -o out.mp4")
    return _run(args, _request(args, **fields))


def load_storyboard(path: str):
    """Read [[shot]] tables (start, end, prompt) from a TOML file."""
    from kinema.pipeline import Shot

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such storyboard file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a storyboard TOML file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; a storyboard is TOML with [[shot]] start, end, prompt") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    tables = data.get("shot", [])
    if not isinstance(tables, list):
        raise InputError(f"{path}: write each shot as a [[shot]] table with start, end and prompt")
    shots = []
    for number, shot in enumerate(tables, 1):
        try:
            shots.append(Shot(float(shot["start"]), float(shot["end"]), str(shot["prompt"])))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: shot {number} needs start, end (seconds) and prompt") from None
        if shots[-1].end <= shots[-1].start:
            raise InputError(f"{path}: shot {number} ends before it starts")
    if not shots:
        raise InputError(f"{path}: no shots; write [[shot]] tables with start, end and prompt")
    return sorted(shots, key=lambda s: s.start)


def run_extend(args) -> int:
    _check_output(args)
    return _run(args, _request(args, task="extend", prompt=args.prompt, seconds=args.seconds,
                               video=_read(args.input), backward=args.backward))


def run_interpolate(args) -> int:
    _check_output(args)
    return _run(args, _request(args, task="interpolate", prompt=args.prompt, video=_read(args.input), factor=args.factor))


def run_fill(args) -> int:
    _check_output(args)
    return _run(args, _request(args, task="fill", prompt=args.prompt, video=_read(args.input), fill_frames=args.frames))


def run_connect(args) -> int:
    _check_output(args)
    return _run(args, _request(args, task="connect", prompt=args.prompt, seconds=args.seconds,
                               video=_read(args.first), video_b=_read(args.second)))


def run_edit(args) -> int:
    _check_output(args)
    return _run(args, _request(args, task="edit", prompt=args.prompt, video=_read(args.input), strength=args.strength))


def run_demo(args) -> int:
    parser = argparse.ArgumentParser()
    _common(parser, output=False)
    defaults = parser.parse_args(["--quiet"] if not sys.stderr.isatty() else [])
    defaults.output, defaults.precision = args.output, args.precision
    request = _request(defaults, prompt=args.prompt, seconds=4.0)
    return _run(defaults, request)
