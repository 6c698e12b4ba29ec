"""`kinema keys init`: make a local C2PA signing key and certificate chain."""

from __future__ import annotations

import argparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from kinema.provenance.keys import ROOT_FILE, default_key_dir, init_keys


def run_init(args: argparse.Namespace) -> int:
    key = init_keys(args.dir, force=args.force)
    leaf = x509.load_pem_x509_certificate(key.cert_chain_pem())
    print(f"signing certificate: {key.cert_chain_path}")
    print(f"private key (mode 0600, keep it private): {key.key_path}")
    print(f"root CA (trust anchor for `kinema verify`): {key.key_path.parent / ROOT_FILE}")
    print(f"certificate SHA-256 fingerprint: {leaf.fingerprint(hashes.SHA256()).hex(':')}")
    if args.dir and key.key_path.parent != default_key_dir():
        print(f"to use it: export KINEMA_KEY_DIR={key.key_path.parent}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="manage the local C2PA signing key")
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="make a root CA and an ES256 signing certificate",
        description="Make a local root CA and an ES256 signing certificate for C2PA manifests in "
        "~/.config/kinema/keys (or $KINEMA_KEY_DIR). To sign with your own chain instead, set "
        "KINEMA_SIGN_CERT and KINEMA_SIGN_KEY; to trust other roots, list PEM files in KINEMA_TRUST_ANCHORS.",
    )
    init.add_argument("--dir", help="folder for the key files (default: $KINEMA_KEY_DIR or ~/.config/kinema/keys)")
    init.add_argument("--force", action="store_true", help="replace an existing key")
    init.set_defaults(handler=run_init)
