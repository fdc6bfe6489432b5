"""Training the seed U-Net in PyTorch and exporting it to ONNX."""
