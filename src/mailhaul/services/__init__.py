"""Use cases; the only layer that opens transactions."""
