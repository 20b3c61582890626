"""The HTTP side of `mailhaul serve`: health, metrics (and, later, the web UI and API)."""
