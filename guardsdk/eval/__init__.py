"""Evaluation on the GuardReasoner benchmarks: the benchmark sets, running a guard over them, the paper's scoring
protocol and reports (``guardsdk eval``)."""
