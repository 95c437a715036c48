"""Release locks: one release at a time per environment (a lease with a heartbeat in the shared state)."""
