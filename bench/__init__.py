"""Benchmarks: commands that measure Berlian on the real local stack (``./berlian bench``)."""
