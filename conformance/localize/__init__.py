"""Where a failing model first goes wrong: per-layer error profiles on ONNX runtimes
(``onnx_graph``: intermediates and single nodes) and on program runtimes (``program``: each layer
exported alone)."""
