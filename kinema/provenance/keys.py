"""Local ES256 signing keys: a root CA and a signing leaf with the extensions C2PA validators require."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kinema.errors import InputError

CERT_FILE = "signer-chain.pem"
KEY_FILE = "signer.key"
ROOT_FILE = "root-ca.pem"
NO_KEY_HINT = "run `kinema keys init` to make a local signing key, or set KINEMA_SIGN_CERT and KINEMA_SIGN_KEY"


@dataclass(frozen=True)
class SigningKey:
    """A PEM certificate chain (leaf first) and the path of its private key; the key is read only to sign."""

    cert_chain_path: Path
    key_path: Path

    def __repr__(self) -> str:
        return f"SigningKey(cert_chain_path={str(self.cert_chain_path)!r}, key_path={str(self.key_path)!r})"

    def cert_chain_pem(self) -> bytes:
        return self.cert_chain_path.read_bytes()

    def private_key_pem(self) -> bytes:
        return self.key_path.read_bytes()


def default_key_dir() -> Path:
    """KINEMA_KEY_DIR, else ~/.config/kinema/keys."""
    configured = os.environ.get("KINEMA_KEY_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".config" / "kinema" / "keys"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kinema"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{name: enabled.get(name, False) for name in names})


def _make_chain(common_name: str, years: int = 10) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=365 * years)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{common_name} root CA"))
        .issuer_name(_name(f"{common_name} root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{common_name} signer"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return leaf_key, leaf, root


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def init_keys(key_dir: str | os.PathLike | None = None, force: bool = False, common_name: str = "kinema local") -> SigningKey:
    """Make a root CA and an ES256 signing leaf in `key_dir`; the private key file gets mode 0600."""
    key_dir = Path(key_dir).expanduser() if key_dir else default_key_dir()
    key = SigningKey(key_dir / CERT_FILE, key_dir / KEY_FILE)
    if key.key_path.exists() and not force:
        raise InputError(f"{key.key_path}: a signing key already exists; pass --force to replace it")
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    leaf_key, leaf, root = _make_chain(common_name)
    pem = serialization.Encoding.PEM
    _write_private(
        key.key_path,
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    # C2PA wants the chain without its root; the root is the trust anchor a verifier configures.
    key.cert_chain_path.write_bytes(leaf.public_bytes(pem))
    (key_dir / ROOT_FILE).write_bytes(root.public_bytes(pem))
    return key


def find_signing_key(cert: str | os.PathLike | None = None, key: str | os.PathLike | None = None) -> SigningKey | None:
    """Explicit paths, else KINEMA_SIGN_CERT/KINEMA_SIGN_KEY, else the default key dir; None when there is none."""
    cert = cert or os.environ.get("KINEMA_SIGN_CERT")
    key = key or os.environ.get("KINEMA_SIGN_KEY")
    if bool(cert) != bool(key):
        raise InputError("a signing certificate chain and its private key go together; give both (KINEMA_SIGN_CERT and KINEMA_SIGN_KEY)")
    if cert and key:
        found = SigningKey(Path(cert).expanduser(), Path(key).expanduser())
        for path in (found.cert_chain_path, found.key_path):
            if not path.is_file():
                raise InputError(f"{path}: no such file (signing certificate or key)")
        return found
    default = SigningKey(default_key_dir() / CERT_FILE, default_key_dir() / KEY_FILE)
    return default if default.cert_chain_path.is_file() and default.key_path.is_file() else None


def trust_anchors_pem() -> str:
    """PEM roots a signer may chain to: the local kinema root plus files named in KINEMA_TRUST_ANCHORS (os.pathsep)."""
    paths = [default_key_dir() / ROOT_FILE]
    paths += [Path(p).expanduser() for p in os.environ.get("KINEMA_TRUST_ANCHORS", "").split(os.pathsep) if p]
    return "".join(p.read_text() for p in paths if p.is_file())
