"""Measuring scripts: classifier (benchmarks/README.md)."""
