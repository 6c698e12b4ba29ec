"""Bad input to the `kinema` command: one clear line, a non-zero exit, and no file lost or left half-written."""

import errno
import os
import signal

import numpy as np
import pytest

from kinema.cli import main
from kinema.errors import InputError, file_error
from kinema.io import write_image
from tests.tiny import make_tiny_checkpoint

PROMPT = "a blue cube slides to the left"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny"))


def run(argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of `kinema ARGV`, run in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, *words, exit_code=2):
    assert code == exit_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("kinema")]
    assert len(lines) == 1 and "error:" in lines[0], err
    for word in words:
        assert word in lines[0], err


def generate(checkpoint, output, *extra):
    return ["generate", PROMPT, "-o", output, "--checkpoint", checkpoint, "--seconds", "0.5", "--quiet",
            "--no-sign", *extra]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--steps", "0"], "steps 0: choose from 1 to 1000"),  # was read as "the default"
        (["--fps", "0"], "fps 0.0: choose a frame rate"),  # was read as "the default"
        (["--fps", "nan"], "fps nan"),  # was a traceback
        (["--fps", "1e9"], "up to 60"),  # was a traceback (256 GB allocation)
        (["--guidance", "nan"], "guidance nan: choose a scale from 1"),  # was accepted
        (["--seed", str(10**20)], "seed 100000000000000000000: choose an integer from 0"),  # was a traceback
        (["--seconds", "-1"], "choose a duration above 0"),
    ],
)
def test_numbers_no_generation_can_use_are_refused(checkpoint, tmp_path, capsys, options, message):
    out = tmp_path / "out.mp4"
    code, err = run(generate(checkpoint, out, *options), capsys)
    assert_one_line_error(code, err, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("size", ["0x32", "-16x32", "16x-32"])
def test_a_size_with_a_zero_or_negative_side_is_refused_not_replaced_by_the_default(checkpoint, tmp_path, capsys,
                                                                                    size):
    """`-16x32` used to be read as an unknown option ("--size: expected one argument")."""
    code, err = run(generate(checkpoint, tmp_path / "out.mp4", "--size", size), capsys)
    assert code == 2 and f"size '{size}': both sides must be positive" in err and "Traceback" not in err


def test_values_after_a_dash_still_leave_options_alone(checkpoint, tmp_path, capsys):
    """A dash and a digit starts a value; a dash and a letter is still an option (here an unknown one)."""
    code, err = run(generate(checkpoint, tmp_path / "out.mp4", "--seed", "-5"), capsys)
    assert_one_line_error(code, err, "seed -5: choose an integer from 0")
    code, err = run(generate(checkpoint, tmp_path / "out.mp4", "--size", "-x"), capsys)
    assert code == 2 and "argument --size: expected one argument" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.mp4", b"this is a text file, not a video\n", "neither a readable video nor a readable image"),
        ("empty.mp4", b"", "is empty (0 bytes)"),
        ("missing.mp4", None, "no such file"),
        ("folder", "dir", "is a folder"),
    ],
)
def test_unreadable_inputs_are_named_with_what_would_work(checkpoint, tmp_path, capsys, name, content, message):
    source = tmp_path / name
    if content == "dir":
        source.mkdir()
    elif content is not None:
        source.write_bytes(content)
    out = tmp_path / "out.mp4"
    for argv in (["extend", source], ["interpolate", source], ["connect", source, source], ["edit", source, PROMPT]):
        code, err = run([*argv, "-o", out, "--checkpoint", checkpoint, "--quiet", "--no-sign"], capsys)
        assert_one_line_error(code, err, str(source), message)
    assert not out.exists()


def test_a_storyboard_that_is_not_text_or_not_shots_is_named(checkpoint, tmp_path, capsys):
    binary = tmp_path / "board.toml"
    binary.write_bytes(b"\x00\x9f\xff binary")
    scalar = tmp_path / "scalar.toml"
    scalar.write_text("shot = 3\n")
    for board, message in ((binary, "not a text file"), (scalar, "[[shot]] table"), (tmp_path, "is a folder")):
        code, err = run(["generate", "--storyboard", board, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint],
                        capsys)
        assert_one_line_error(code, err, str(board), message)


def test_outputs_that_cannot_be_written_fail_before_any_work(checkpoint, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = [
        (tmp_path, "is a folder"),
        (fifo, "is not a regular file"),  # a device or pipe was replaced by an MP4 (as root, even /dev/full)
        (blocker / "out.mp4", "already exists as a file where a folder is needed"),
        (tmp_path / "out.png", "end the name with .mp4 or .mov"),  # was an MP4 named .png, unsignable
        (tmp_path / ("n" * 300 + ".mp4"), "the name is too long"),
    ]
    for output, message in cases:
        code, err = run(generate(checkpoint, output), capsys)
        assert_one_line_error(code, err, message)
    assert sorted(os.listdir(tmp_path)) == ["a-file", "pipe.mp4"] and blocker.read_text() == "in the way"


def test_an_existing_output_is_kept_unless_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, err = run(generate(checkpoint, out), capsys)
    assert_one_line_error(code, err, str(out), "already exists; pass --overwrite")
    assert out.read_bytes() == b"precious"

    code, err = run(generate(checkpoint, out, "--overwrite"), capsys)
    assert code == 0, err
    assert out.read_bytes()[4:8] == b"ftyp"
    assert os.listdir(tmp_path) == ["out.mp4"]  # no staging folder or temporary file left beside it


def test_a_new_folder_for_the_output_is_made(checkpoint, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "out.mp4"
    code, err = run(generate(checkpoint, out), capsys)
    assert code == 0, err
    assert os.listdir(out.parent) == ["out.mp4"]


def full_disk_while_writing(frames, fps, path, info, **kwargs):
    path.write_bytes(b"\x00" * 64)  # half a file, as a full disk leaves it
    raise file_error(OSError(errno.ENOSPC, "No space left on device"), path)


def full_disk_while_signing(frames, fps, path, info, **kwargs):
    path.write_bytes(b"\x00" * 64)
    raise OSError(errno.ENOSPC, "No space left on device")


def interrupted(frames, fps, path, info, **kwargs):
    path.write_bytes(b"\x00" * 64)
    raise KeyboardInterrupt


def terminated(frames, fps, path, info, **kwargs):
    path.write_bytes(b"\x00" * 64)
    handler = signal.getsignal(signal.SIGTERM)
    handler(signal.SIGTERM, None)  # what `kill PID` runs; fails here if the CLI left SIGTERM fatal


@pytest.mark.parametrize(
    "failure, exit_code, message",
    [
        (full_disk_while_writing, 2, "the disk is full"),
        (full_disk_while_signing, 2, "the disk is full"),
        (interrupted, 130, "interrupted"),
        (terminated, 143, "interrupted"),
    ],
)
def test_a_failed_or_interrupted_write_keeps_the_old_file_and_leaves_nothing(checkpoint, tmp_path, capsys,
                                                                            monkeypatch, failure, exit_code, message):
    monkeypatch.setattr("kinema.provenance.finalize_video", failure)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, err = run(generate(checkpoint, out, "--overwrite"), capsys)
    assert code == exit_code and message in err and "Traceback" not in err, err
    if exit_code == 2:  # the message names the output the user gave, not the staging file
        assert_one_line_error(code, err, f"{out}: the disk is full")
    assert out.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out.mp4"]
    assert signal.getsignal(signal.SIGTERM) == sigterm_before  # the caller's handling is restored


def test_an_error_after_the_progress_bar_starts_on_its_own_line(checkpoint, tmp_path, capsys):
    code, err = run(["generate", PROMPT, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--size", "48x80",
                     "--no-sign"], capsys)
    assert code == 2
    assert any(line.startswith("kinema: error: height 80") for line in err.splitlines()), repr(err)


def test_unknown_options_and_unquoted_prompts_point_to_help(tmp_path, capsys):
    code, err = run(["generate", PROMPT, "-o", tmp_path / "o.mp4", "--bogus"], capsys)
    assert code == 2 and "unrecognized arguments: --bogus; see `kinema generate --help`" in err
    code, err = run(["generate", "a", "red", "ball", "-o", tmp_path / "o.mp4"], capsys)
    assert code == 2 and "quote a prompt of several words" in err
    code, err = run(["world", "render", "--count", "1", "--out", tmp_path, "--bogus"], capsys)
    assert code == 2 and "see `kinema world render --help`" in err


def test_help_explains_overwrite_ranges_and_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--overwrite", "above 0 and up to 60", "1 to 1000", "3 prompt refused", "130 interrupted"):
        assert phrase in text


def test_other_commands_refuse_bad_options_in_one_line(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('[train]\nstage = "dit"\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        (["train", config, "--steps", "0"], "--steps 0: choose at least 1"),  # was silently the config's
        (["train", tmp_path / "a.mp4"], "no such config file"),
        (["cache", config, "--out", tmp_path / "c", "--count", "0"], "--count 0"),  # encoded nothing, exit 0
        (["serve", "--port", "99999", "--data", tmp_path / "srv"], "--port 99999"),  # was a traceback
        (["serve", "--max-upload-mb", "-1", "--data", tmp_path / "srv"], "--max-upload-mb"),  # served anyway
        (["keys", "add", "me", "--db", "bogus://x"], "not a database URL"),  # was a traceback
        (["keys", "init", "--dir", blocker], "a file where a folder is needed"),  # was a traceback
        (["eval", "--worst", "-1", "--out", tmp_path / "e"], "--worst -1"),
    ]
    for argv, message in cases:
        code, err = run(argv, capsys)
        assert_one_line_error(code, err, message)


def test_an_image_output_is_never_written_over_a_device(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        write_image(fifo, np.zeros((8, 8, 3), np.uint8))
    assert fifo.is_fifo()


def test_one_frame_interpolation_empty_verify_and_binary_configs_are_named(checkpoint, tmp_path, capsys,
                                                                         monkeypatch):
    still = tmp_path / "still.png"
    write_image(still, np.zeros((32, 48, 3), np.uint8))
    code, err = run(["interpolate", still, "-o", tmp_path / "i.mp4", "--checkpoint", checkpoint, "--quiet",
                     "--no-sign"], capsys)
    assert_one_line_error(code, err, "at least two frames", "generate --image")  # was a one-frame "success"
    assert not (tmp_path / "i.mp4").exists()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, err = run(["verify", empty], capsys)
    assert_one_line_error(code, err, "is empty (0 bytes)")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 16)
    code, err = run(["train", binary], capsys)
    assert_one_line_error(code, err, "not a text file", exit_code=code)
    monkeypatch.setenv("KINEMA_SAFETY_POLICY", str(binary))  # read on every generation, not only by `safety`
    code, err = run(generate(checkpoint, tmp_path / "g.mp4"), capsys)
    assert_one_line_error(code, err, "safety policy", "not a text file", exit_code=code)
    assert code != 0 and not (tmp_path / "g.mp4").exists()


def test_a_video_too_large_to_decode_whole_is_refused_in_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    from kinema.io import video as video_io

    clip = tmp_path / "clip.mp4"
    video_io.write_video(clip, np.zeros((12, 32, 48, 3), np.uint8), 8)
    monkeypatch.setattr(video_io, "MAX_DECODED_BYTES", 5 * 32 * 48 * 3)  # five frames' worth
    code, err = run(["extend", clip, "-o", tmp_path / "e.mp4", "--checkpoint", checkpoint, "--quiet", "--no-sign"],
                    capsys)
    assert_one_line_error(code, err, "too long or too large to decode whole", "after 6 frames of 48x32", "ffmpeg")
    assert not (tmp_path / "e.mp4").exists()
