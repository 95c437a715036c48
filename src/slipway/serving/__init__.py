"""Model serving: a FastAPI app over ONNX Runtime, its bundle format and the servability check.

Nothing here imports torch, MLflow, Prefect, Great Expectations, scikit-learn or pandas: the
serving image has none of them. Import submodules directly; this package imports nothing.
"""
