"""Measuring scripts: service (benchmarks/README.md)."""
