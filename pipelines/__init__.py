"""Apache Beam ingest: segments -> fetch -> decode/resample -> validate -> shards -> manifest."""
