"""Measuring scripts: speed (benchmarks/README.md)."""
