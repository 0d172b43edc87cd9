"""Measuring scripts: parsing (benchmarks/README.md)."""
