"""Wiring of sensor -> reconstruct -> storage: CLI, import jobs, daemons."""
