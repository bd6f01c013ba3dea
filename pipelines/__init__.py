"""Apache Beam ingest: segments -> fetch -> decode/resample -> validate -> shard writers -> manifest."""
