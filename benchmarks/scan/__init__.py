"""Measuring scripts: scan (benchmarks/README.md)."""
