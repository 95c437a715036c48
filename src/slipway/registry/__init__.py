"""Model registry: the interface, the MLflow backend, an in-memory fake and the factory."""
