"""Packets in, per-connection ordered byte chunks out. Knows no application protocol beyond detection."""
