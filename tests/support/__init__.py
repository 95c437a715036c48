"""Helpers shared by every test tier (no fixtures with side effects at import)."""
