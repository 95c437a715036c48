"""Tests that need a CUDA GPU and TensorRT; every module skips with the missing piece named elsewhere."""
