import os
import shutil
import subprocess

import pytest
import torch

# Tiny test models run fastest on one thread (and leave the other core to the rest of the machine).
torch.set_num_threads(1)

REDUCED = os.environ.get("KINEMA_SLOW_REDUCED") == "1"


@pytest.fixture
def reduced() -> bool:
    """True when CI runs slow tests in their reduced form."""
    return REDUCED


@pytest.fixture
def small_disk(tmp_path):
    """Mount a real small file system (tmpfs) of the given size and return its folder; needs root with
    mount rights, as CI has (elsewhere the test is skipped). Unmounted after the test."""
    mounted = []

    def mount(size: str):
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
        if os.geteuid() != 0 or subprocess.run(command, capture_output=True).returncode != 0:
            pytest.skip("mounting a small tmpfs needs root with mount rights")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)  # a file still open: detach it anyway
            pytest.fail(f"{folder} was still in use after the test (a file left open)")


def fill_to(folder, free_bytes: int) -> None:
    """Write a filler file into `folder` until its file system has about `free_bytes` left."""
    free = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\0" * max(0, free - free_bytes))
