"""torch -> artifact: the ONNX exporters (cached per structure) and ONNX graph helpers."""
