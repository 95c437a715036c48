"""Data validation gate: the suite spec, the validator interface, its GX backend and a pandas fake."""
