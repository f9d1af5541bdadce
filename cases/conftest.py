"""Process-wide settings the suite's cases need, made only when the cases run (the installed
plugin never touches another project's run).

Torch's OpenMP threads spin after each op and starve whatever runs next on a small machine (ONNX
Runtime's own threads, an adb server, a loopback device): measured on 2 cores, a device parity
loop ran at 38 examples/s with spinning and 725/s without. numpy's OpenBLAS threads make the
small QRs of orthogonal weight init ~20x slower beside torch and ONNX Runtime threads (26 ms vs
1.2 ms for a 576x64 QR). Both must be set before torch and numpy load their thread pools: this
conftest is imported before the case modules that import them.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
