"""Protocol reconstruction: sans-I/O decoders fed ordered bytes, emitting typed events."""
