"""Deploy targets (local processes, Kubernetes) and what the canary controller observes through them."""
