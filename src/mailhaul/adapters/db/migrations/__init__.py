"""Alembic migrations of the mailhaul schema (run by `Database.upgrade()`, no alembic.ini)."""
