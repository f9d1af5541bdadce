"""Subcommands of the ``conformance`` command (one module each, see ``conformance.cli``)."""


def add_backend_arguments(parser) -> None:
    """``--backend``, ``--device`` and ``--ort-provider``, as the pytest options take them."""
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="backend under test (repeatable): 'onnxruntime', 'onnxruntime-ort' or an "
                             "ONNX-backend-API module/class such as 'onnxruntime.backend' or 'pkg.mod:Class'. "
                             "Default: onnxruntime")
    parser.add_argument("--device", action="append", metavar="SERIAL",
                        help="an ADB device (repeatable; HOST:PORT is connected). Default: none")
    parser.add_argument("--ort-provider", default="CPUExecutionProvider", metavar="PROVIDER",
                        help="execution provider of the built-in onnxruntime backend. Default: CPUExecutionProvider")
