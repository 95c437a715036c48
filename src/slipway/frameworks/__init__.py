"""Framework adapters: how a model of one ML framework is loaded, scored, exported to ONNX and logged."""
