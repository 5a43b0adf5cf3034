"""Benchmarks (README "Benchmarks"): each script runs on its own, ``python bench/<name>.py``."""
