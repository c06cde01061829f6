"""Compression: each step turns a Run into a new Run; every variant is measured the same way."""
