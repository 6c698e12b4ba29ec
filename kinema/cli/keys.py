"""`kinema keys init`: make a local C2PA signing key and certificate chain.

`kinema keys add | list | revoke`: API keys for `kinema serve` (only their SHA-256 is stored).
"""

from __future__ import annotations

import argparse
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from kinema.errors import InputError
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


def open_store(url: str):
    """The server's job and key store at `url`; InputError when the URL or the database cannot be used."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    from kinema.server.store import Store

    try:
        return Store(url)
    except ArgumentError as exc:
        raise InputError(f"--db {url}: not a database URL kinema can open ({exc}); use sqlite:///PATH or "
                         "postgresql://USER@HOST/NAME") from None
    except OperationalError as exc:
        raise InputError(f"--db {url}: cannot open the database ({exc.orig}); check the path or server") from None


def _api_store(args: argparse.Namespace):
    from kinema.server.store import default_db_url

    return open_store(args.db or default_db_url(args.data))


def run_add(args: argparse.Namespace) -> int:
    record, secret = _api_store(args).add_key(args.name)
    print(secret)
    print(f"API key {record.id} ({record.name}) added; the key above is shown only this once: keep it secret.",
          file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    for record in _api_store(args).list_keys():
        state = "revoked" if record.revoked_at else "active"
        print(f"{record.id}\t{record.name}\t{record.prefix}...\t{state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    revoked = _api_store(args).revoke_key(args.name)
    if not revoked:
        raise InputError(f"no active API key named or with id {args.name!r}; see `kinema keys list`")
    for record in revoked:
        print(f"revoked {record.id} ({record.name})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="manage the local C2PA signing key and server API keys",
                                   description="init: a local C2PA signing key; add, list, revoke: API keys for "
                                   "`kinema serve`.")
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

    def api_options(action: argparse.ArgumentParser) -> None:
        action.add_argument("--db", help="the server's database URL (default sqlite:///DATA/kinema.db)")
        action.add_argument("--data", help="the server's data folder, for the default database "
                            "(default $KINEMA_DATA_DIR or ~/.local/share/kinema/server)")

    add = actions.add_parser("add", help="make an API key for `kinema serve` and print it once",
                             description="Make an API key for `kinema serve`. It is printed once; the server "
                             "stores only its SHA-256.")
    add.add_argument("name", help="who or what the key is for")
    api_options(add)
    add.set_defaults(handler=run_add)
    listing = actions.add_parser("list", help="list the server's API keys (ids, names, prefixes)",
                                 description="List the server's API keys: id, name, prefix and whether revoked.")
    api_options(listing)
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="revoke API keys by name or id",
                                description="Revoke every active API key with this name or id; clients using "
                                "it get 401 from then on.")
    revoke.add_argument("name", help="key name or id (every active key with that name is revoked)")
    api_options(revoke)
    revoke.set_defaults(handler=run_revoke)
