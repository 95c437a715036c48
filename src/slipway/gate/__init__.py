"""Quality gate: a pure decision over holdout metrics, the champion's and the configured limits."""
