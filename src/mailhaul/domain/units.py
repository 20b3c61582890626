"""Sizes for people, the same in the run log, the CLI and the web pages."""

from __future__ import annotations


def human_bytes(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``100 MiB``, ``2.3 GiB`` (binary units)."""
    if size < 1024:
        return f"{size} B"
    amount, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    return f"{amount:.1f}".removesuffix(".0") + f" {unit}"
