"""Measuring scripts: cascade (benchmarks/README.md)."""
