"""Interactive quantization workbench for ONNX models deployed on TensorRT."""
