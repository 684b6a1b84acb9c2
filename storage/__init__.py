"""Durable records: the DuckDB catalog and the recording store."""
