import json
import os
import stat

import pytest

from kinema.cli import main
from kinema.io import read_video, write_video
from kinema.provenance import ProvenanceInfo, finalize_image, finalize_video, init_keys, sign_video, verify
from tests.conftest import fill_to
from tests.test_watermark import moving_discs

INFO = ProvenanceInfo(operation="generate", checkpoint_id="kinema-tiny", checkpoint_sha256="ab" * 32, seed=3)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys")
    init_keys(path)
    return path


@pytest.fixture(autouse=True)
def keys_env(monkeypatch, key_dir):
    monkeypatch.setenv("KINEMA_KEY_DIR", str(key_dir))
    for name in ("KINEMA_SIGN_CERT", "KINEMA_SIGN_KEY", "KINEMA_TRUST_ANCHORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def clip():
    return moving_discs(1)


@pytest.fixture
def signed(tmp_path, clip, key_dir, monkeypatch):
    monkeypatch.setenv("KINEMA_KEY_DIR", str(key_dir))
    path = tmp_path / "clip.mp4"
    status = finalize_video(clip, 8, path, INFO)
    assert status.signed and status.watermarked, status.message
    return path, status


def test_sign_then_verify(signed, capsys):
    path, status = signed
    report = verify(path)
    assert report.manifest.present and report.manifest.valid and report.manifest.trusted
    assert not report.manifest.tampered
    actions = report.manifest.claims["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert actions[0]["softwareAgent"]["name"].startswith("kinema ")
    model = report.manifest.claims["model"]
    assert model["checkpoint_id"] == "kinema-tiny" and model["watermark_id"] == status.payload_id
    assert report.watermark.found and report.watermark.payload_id == status.payload_id
    assert main(["verify", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kinema_generated"] and out["c2pa"]["trusted"]


def test_untrusted_signer_is_still_valid(signed, monkeypatch, tmp_path):
    monkeypatch.setenv("KINEMA_KEY_DIR", str(tmp_path / "elsewhere"))
    report = verify(signed[0])
    assert report.manifest.valid and not report.manifest.trusted


def test_flipped_media_byte_is_tampered(signed):
    path, _ = signed
    data = bytearray(path.read_bytes())
    data[data.find(b"mdat") + 200] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify(path)
    assert report.manifest.present and report.manifest.tampered and not report.manifest.valid


def test_reencode_drops_manifest_keeps_watermark(signed, tmp_path):
    path, status = signed
    copy = write_video(tmp_path / "reencoded.mp4", read_video(path).frames, 8, crf=28)
    report = verify(copy)
    assert not report.manifest.present
    assert report.watermark.found and report.kinema_generated
    assert main(["verify", str(copy)]) == 0


def test_derived_video_lists_its_input(signed, clip, tmp_path):
    source, _ = signed
    out = tmp_path / "extended.mp4"
    write_video(out, clip, 8)
    sign_video(out, ProvenanceInfo(operation="extend", inputs=[str(source)]))
    claims = verify(out).manifest.claims
    assert [a["action"] for a in claims["actions"]] == ["c2pa.opened", "c2pa.edited"]
    assert claims["ingredients"] == [{"title": "clip.mp4", "relationship": "parentOf"}]


def test_unrelated_video_reports_neither(clip, tmp_path, capsys):
    path = write_video(tmp_path / "other.mp4", clip, 8)
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "C2PA manifest: none" in out and "watermark: not found" in out


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_unreadable_files_exit_2_with_one_line(signed, tmp_path, capsys, damage):
    path = tmp_path / "bad.mp4"
    if damage == "corrupt":
        # C2PA's message echoes the box type at offset 4: make it a newline and control bytes
        path.write_bytes(b"\x00\x00\x10\x00" + b"\x1c\n\r\xff" + os.urandom(4088))
    elif damage == "truncated":
        path.write_bytes(signed[0].read_bytes()[:3000])
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinema: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_no_key_still_watermarks(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("KINEMA_KEY_DIR", str(tmp_path / "nokeys"))
    status = finalize_video(clip, 8, tmp_path / "unsigned.mp4", INFO)
    assert not status.signed and "kinema keys init" in status.message
    report = verify(tmp_path / "unsigned.mp4")
    assert not report.manifest.present and report.watermark.found


def test_keys_init_private_key_stays_private(tmp_path, capsys, clip, monkeypatch):
    key_dir = tmp_path / "newkeys"
    assert main(["keys", "init", "--dir", str(key_dir)]) == 0
    key_file = key_dir / "signer.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = "".join(key_file.read_text().splitlines()[1:-1])
    monkeypatch.setenv("KINEMA_KEY_DIR", str(key_dir))
    status = finalize_video(clip, 8, tmp_path / "v.mp4", INFO)
    assert main(["verify", str(tmp_path / "v.mp4"), "--json"]) == 0
    assert main(["keys", "init", "--dir", str(key_dir)]) == 2  # refuses to overwrite
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, repr(status), (tmp_path / "v.mp4").read_bytes().decode("latin-1")):
        assert secret[:40] not in text and secret[-40:] not in text


def test_png_round_trip(clip, tmp_path):
    status = finalize_image(clip[3], tmp_path / "still.png", ProvenanceInfo(operation="image"))
    assert status.signed
    report = verify(tmp_path / "still.png")
    assert report.manifest.valid and report.manifest.trusted
    assert report.watermark.found and report.watermark.payload_id == status.payload_id


def test_signed_file_keeps_the_usual_permissions(signed, clip, tmp_path, monkeypatch):
    """Signing rewrites the file through a private temp file; the result must not stay owner-only (0600)."""
    path, _ = signed
    monkeypatch.delenv("KINEMA_KEY_DIR")
    monkeypatch.setenv("KINEMA_KEY_DIR", str(tmp_path / "no-keys"))
    plain = tmp_path / "plain.mp4"
    assert not finalize_video(clip, 8, plain, INFO).signed
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("headroom, check_first", [(-4096, True), (32 << 10, True), (2048, False)])
def test_signing_on_a_full_disk_names_it_and_keeps_the_file(small_disk, clip, key_dir, monkeypatch, headroom,
                                                             check_first):
    """Less room than the file, or short of the signing headroom: refused before c2pa starts. With the check
    first switched off, c2pa runs out of room mid-write, which it reports only as an opaque I/O error
    ("Io: Other: UntrackedPointer"). Either way: one clear message, the unsigned file intact, nothing left."""
    disk = small_disk("256k")
    from kinema.errors import InputError
    from kinema.provenance import find_signing_key, sign_file

    if not check_first:
        monkeypatch.setattr("kinema.provenance.manifest.SIGNING_HEADROOM", 0)
    path = write_video(disk / "clip.mp4", clip, 8)
    before = path.read_bytes()
    fill_to(disk, len(before) + headroom)
    with pytest.raises(InputError) as caught:
        sign_file(path, INFO, find_signing_key())
    assert str(caught.value) == f"{path}: the disk is full; free some space or write somewhere else"
    assert path.read_bytes() == before
    assert sorted(os.listdir(disk)) == ["clip.mp4", "filler"]

    (disk / "filler").unlink()  # with room again, the same file signs and verifies
    sign_file(path, INFO, find_signing_key())
    assert verify(path).manifest.valid
