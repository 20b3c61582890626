"""Folders mailhaul creates: mode 0700 each, whatever the umask (mail and data are private)."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700; folders that exist are left alone.

    ``Path.mkdir(parents=True, mode=…)`` gives the parents the umask's mode (often 0755, so
    any local user could list whose mailboxes exist); here every folder made is 0700.
    Raises OSError like ``mkdir`` when a folder cannot be made.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if folder.is_dir():  # made meanwhile by another thread or process: its mode stays
                continue
            raise
        os.chmod(folder, PRIVATE_DIR_MODE)  # the umask may have taken the owner's bits off
