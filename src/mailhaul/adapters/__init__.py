"""Adapters: protocol clients, sinks, storage. Library errors become domain errors here."""
