"""guardsdk_trainer: the GuardReasoner training recipe (synthesis, R-SFT, HS-DPO, export)."""
