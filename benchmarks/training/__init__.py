"""Measuring scripts: training (benchmarks/README.md)."""
