"""The cheap list of known schema revisions (no Alembic import) agrees with Alembic's."""

from __future__ import annotations

from mailhaul.adapters.db import schema
from mailhaul.adapters.db.database import known_revisions


def test_known_revisions_from_the_script_names_are_alembics():
    assert known_revisions() == schema.known_revisions()
    assert max(known_revisions()) == schema.head_revision()
