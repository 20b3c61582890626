"""Storage on SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core."""
