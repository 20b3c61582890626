"""The pure core: account options, the retrieval plan, schedule maths. No I/O here."""
