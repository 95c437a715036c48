"""Training hand-off: the entrypoint contract, its loader, and model import from a registry URI."""
