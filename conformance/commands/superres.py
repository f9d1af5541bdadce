"""``conformance superres [IMAGE] --output OUT.png``: the tutorial's cat-image pipeline on a backend.

Resize (optional) -> YCbCr -> SuperResolutionNet(3) on Y -> bicubic Cb/Cr -> RGB -> PNG. Without
IMAGE it upscales skimage.data.chelsea() (the tutorial's cat). With --backend the network is
exported to ONNX (TorchScript, opset 17, dynamic height/width) and run on that backend.

Exit codes: 0 written; 1 the backend failed to prepare or run the model; 2 bad input (image,
size, weights, backend name).
"""

from __future__ import annotations

import sys

from conformance.pipeline.superres import add_arguments, run_command

EXIT_FAILED, EXIT_USAGE = 1, 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "superres", help="upscale an image x3 with SuperResolutionNet on a backend (the tutorial's pipeline)",
        description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n")[2])
    add_arguments(parser)
    parser.add_argument("--backend", default="pytorch", metavar="NAME",
                        help="what runs the network: 'pytorch' (eager), or a name the pytest option "
                             "--backend takes: 'onnxruntime', 'onnxruntime-ort' (ORT format), an "
                             "ONNX-backend-API module such as 'onnxruntime.backend'. Default: pytorch")
    parser.set_defaults(func=run)


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run(args) -> int:
    from conformance.backends import BackendError
    from conformance.formats.onnx_export import ExportError, UnsupportedExport
    from conformance.pipeline.runners import runner_factory

    try:
        make_runner, backend = runner_factory(args.backend)
    except BackendError as exc:  # an unknown name, a module without prepare(), ...
        return _error(str(exc), EXIT_USAGE)
    try:
        return run_command(args, make_runner)
    except (BackendError, ExportError, UnsupportedExport) as exc:
        return _error(str(exc), EXIT_FAILED)
    finally:
        if backend is not None:
            backend.close()
