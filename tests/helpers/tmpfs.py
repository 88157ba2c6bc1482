"""A real, small tmpfs for the disk-full and read-only tests, where this machine lets a test
mount one (root in a container that allows it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[str | None]:
    """Mount a tmpfs of ``size`` (``"8m"``) on ``mount_point`` (created if missing) and
    unmount it at the end; yields None once mounted, else why it could not be."""
    mount_point.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        yield "no mount command"
        return
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if made.returncode != 0:
        yield made.stderr.strip() or f"mount exited {made.returncode}"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


@contextmanager
def tmpfs_or_skip(mount_point: Path, size: str) -> Iterator[Path]:
    """``tmpfs``, skipping the test (with the reason) where this machine cannot mount one."""
    with tmpfs(mount_point, size) as failure:
        if failure is not None:
            pytest.skip(f"cannot mount a tmpfs here: {failure}")
        yield mount_point
