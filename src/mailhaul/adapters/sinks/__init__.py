"""Local delivery sinks."""
