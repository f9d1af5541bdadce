"""``conformance version``: the versions a report header would show."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("version", help="print the versions of the suite and its runtimes")
    parser.set_defaults(func=run)


def run(args) -> int:
    import onnx
    import onnxruntime
    import torch

    import conformance
    from conformance.pytest.session import cpu_name

    print(f"conformance {conformance.__version__}; torch {torch.__version__}; onnx {onnx.__version__}; "
          f"onnxruntime {onnxruntime.__version__}; CPU: {cpu_name()}")
    return 0
