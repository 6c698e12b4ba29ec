"""`kinema safety check "PROMPT"`: print the safety verdict; exit 0 when allowed, 3 when refused."""

from __future__ import annotations

import argparse
import json

from kinema.errors import RefusedError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("safety", help="check prompts against the safety policy",
                                   description="Check prompts against the safety policy that generation enforces.")
    commands = parser.add_subparsers(dest="safety_command", metavar="SUBCOMMAND", required=True)
    check_parser = commands.add_parser("check", help="check one prompt; exit 3 if it would be refused",
                                       description="Print whether PROMPT is allowed; exit 0 when it is, 3 when "
                                       "generation would refuse it (with its category and reason).")
    check_parser.add_argument("prompt", help="the text prompt to check")
    check_parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check_parser.add_argument("--policy", help="a TOML safety policy (default: $KINEMA_SAFETY_POLICY)")
    check_parser.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    from kinema.safety import Policy, check

    policy = Policy.from_toml(args.policy) if args.policy else Policy.from_env()
    verdict = check(args.prompt, policy)
    if args.json:
        print(json.dumps({"allowed": verdict.allowed, "category": verdict.category,
                          "reason": verdict.reason, "score": round(verdict.score, 4)}))
    elif verdict.allowed:
        print(f"allowed (highest score {verdict.score:.2f})")
    if not verdict.allowed:
        if args.json:
            return RefusedError.exit_code
        raise RefusedError(verdict.category, verdict.reason)
    return 0
