"""Benchmarks (GPU): python -m benchmarks.run."""
