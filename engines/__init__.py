"""How many images are run: in-process (engines.local) or on Ray Data (engines.ray_data),
both writing the same rows (engines.rows) as resumable Parquet/JSONL shards."""
