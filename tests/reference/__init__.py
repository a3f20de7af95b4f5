"""Slow, explicit reference implementations that the fast paths in ``src/r1`` are tested against."""
