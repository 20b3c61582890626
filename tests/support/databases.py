"""Test databases: a SQLite file at the current schema."""

from __future__ import annotations

from pathlib import Path

from mailhaul.adapters.db.database import Database


def upgraded_sqlite(tmp_path: Path) -> str:
    """The URL of a SQLite database in ``tmp_path`` with the current schema."""
    url = f"sqlite:///{tmp_path / 'mailhaul.db'}"
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return url
