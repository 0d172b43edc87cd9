"""The measuring scripts behind the figures in docs/ and README.md, by topic (benchmarks/README.md indexes them)."""
