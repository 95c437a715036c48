"""Optimization stage: ONNX export, parity gate, ORT/INT8/INT4 candidates, selection, TensorRT."""
