"""The aarch64 root behind ``--abi arm64-v8a``: Debian arm64 packages plus PyPI aarch64 wheels.

The loopback device runs its python3 (and so the runner) as
``qemu-aarch64-static -cpu neoverse-n1 -L ROOT ROOT/usr/bin/python3.11``: real ARM kernels of ONNX
Runtime and numpy, executed by QEMU's user mode with exact IEEE semantics. The root is built once,
from package registries only, and cached (default ``~/.cache/conformance/arm-root``):

1. ``apt-get update`` / ``apt-get download`` of CPython 3.11 and its libraries for arm64, through a
   private apt configuration under the cache folder (the host's apt sources, nothing installed
   and no change to the host's dpkg architectures, so no root rights are needed), ``dpkg -x``
   of each into the root;
2. ``pip download --platform manylinux_2_28_aarch64 --only-binary=:all: --python-version 3.11``
   of onnxruntime and numpy (the host's versions, so that device-vs-host differences come from
   the CPU, not from a release), unpacked into the root's ``dist-packages``;
3. an ARM ``/proc/cpuinfo`` inside the root: QEMU 7.2 passes the host's x86 one through (its
   ``-L`` lookup serves ``ROOT/proc/cpuinfo`` instead) and ONNX Runtime's CPU detection crashes
   on the x86 one;
4. one import of both under QEMU, which checks the root and leaves compiled ``.pyc`` files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from conformance.device import packages

QEMU = "qemu-aarch64-static"
CPU = "neoverse-n1"  # a Cortex-A76-class core, as in many phones; "max" would advertise SME
PYTHON = "usr/bin/python3.11"
SITE = "usr/lib/python3/dist-packages"
#: Debian arm64 packages: CPython 3.11, the C/C++ runtime ONNX Runtime needs, coreutils (uname).
DEBS = ("python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 "
        "libstdc++6 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5 libssl3 libcrypt1 libuuid1 "
        "libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libnsl2 libtirpc3 libgssapi-krb5-2 "
        "libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libdb5.3 libgdbm6 "
        "media-types coreutils libacl1 libattr1 libgmp10 libselinux1 libpcre2-8-0").split()
#: PyPI wheels the runner needs on the device.
WHEELS = ("onnxruntime", "numpy")
#: Wheel platform tags accepted (pip matches them exactly; some wheels are manylinux2014 only).
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
MANIFEST = ".conformance-arm-root.json"
class ArmRootError(packages.FetchError):
    """The aarch64 root cannot be built or used; the message is one line that says why."""


def default_root() -> Path:
    """``$CONFORMANCE_ARM_ROOT``, else ``$XDG_CACHE_HOME/conformance/arm-root`` (``~/.cache/...``
    by default)."""
    if os.environ.get("CONFORMANCE_ARM_ROOT"):
        return Path(os.environ["CONFORMANCE_ARM_ROOT"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "conformance" / "arm-root"


def find_qemu() -> str:
    """The ``qemu-aarch64-static`` binary, or ArmRootError saying how to get it."""
    found = shutil.which(QEMU)
    if not found:
        raise ArmRootError(f"{QEMU} is not on PATH (Debian: apt-get install qemu-user-static)")
    return found


def qemu_python(root: Path) -> list[str]:
    """The command line that runs the root's python3.11 on an emulated Neoverse N1."""
    return [find_qemu(), "-cpu", CPU, "-L", str(root), str(root / PYTHON)]


def device_programs(root: Path) -> dict[str, list[str]]:
    """Device shell programs that run under QEMU: ``python3`` and ``uname`` (aarch64)."""
    qemu = [find_qemu(), "-cpu", CPU, "-L", str(root)]
    # env -u: the host's PYTHONPATH/PYTHONHOME would point the ARM python at x86 packages.
    clean = ["env"] + [f"-u{key}" for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")]
    return {"python3": clean + qemu + [str(root / PYTHON)],
            "uname": qemu + [str(root / "bin" / "uname")]}


def wanted_versions() -> dict[str, str]:
    """The wheel versions to put on the device: the host's, where the host has them."""
    return packages.host_versions(WHEELS)


def is_ready(root: Path) -> bool:
    """True when ``root`` is a finished root with the wheel versions wanted now."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("wheels") == wanted_versions()


def ensure_root(root: Path | None = None, *, progress: Callable[[str], None] | None = None,
                ) -> Path:
    """The root, built first if missing or stale; concurrent callers wait for one build."""
    root = Path(root or default_root()).expanduser().resolve()
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    find_qemu()
    if is_ready(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with packages.locked(root.parent / (root.name + ".lock")):
        if not is_ready(root):  # another process may have built it while we waited
            _build(root, say)
    return root


def _build(root: Path, say: Callable[[str], None]) -> None:
    """Build into a fresh folder beside ``root`` and move it into place when it works."""
    start = time.monotonic()
    say(f"arm root: building {root} (once; later runs reuse it)")
    staging = Path(tempfile.mkdtemp(prefix=root.name + ".building-", dir=root.parent))
    work = staging / ".work"
    try:
        versions = wanted_versions()
        debs = _apt_download(work, say)
        say(f"arm root: [3/6] unpacking {len(debs)} Debian packages (dpkg -x)")
        _fetching(packages.unpack_debs, debs, staging, "arm root: ")
        wheels = _pip_download(work, versions, say)
        say(f"arm root: [5/6] unpacking {len(wheels)} wheels into /{SITE}")
        for wheel in wheels:
            packages.unpack_wheel(wheel, staging / SITE)
        write_cpuinfo(staging)
        shutil.rmtree(work)
        say("arm root: [6/6] first import of numpy and onnxruntime under QEMU (checks the root)")
        found = _check(staging)
        (staging / MANIFEST).write_text(json.dumps({"wheels": versions, "found": found}))
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    say(f"arm root: ready in {time.monotonic() - start:.0f} s: {root}")


def _fetching(step, *args):
    """Run a :mod:`conformance.device.packages` step; its FetchError as an ArmRootError."""
    try:
        return step(*args)
    except packages.FetchError as exc:
        raise ArmRootError(str(exc)) from None


def _apt_download(work: Path, say: Callable[[str], None]) -> list[Path]:
    """Download the arm64 .debs through a private apt state under ``work``."""
    numbered = {"apt-get update": "[1/6] ", "apt-get download": "[2/6] "}

    def step(line: str) -> None:  # the shared steps' lines, numbered as this build's
        head = line[len("arm root: "):]
        say("arm root: " + next((n for k, n in numbered.items() if head.startswith(k)), "")
            + head)

    return _fetching(packages.apt_download, work, "arm64", list(DEBS), step, "arm root: ")


def _pip_download(work: Path, versions: dict[str, str], say: Callable[[str], None],
                  ) -> list[Path]:
    """The aarch64 cp311 wheels (no dependencies: the runner needs these two only)."""
    specs = [f"{name}=={v}" if v else name for name, v in versions.items()]
    say(f"arm root: [4/6] pip download {' '.join(specs)} for {WHEEL_PLATFORMS[0]} cp311")
    return _fetching(packages.pip_download, work, specs, "aarch64", "arm root: ")


def write_cpuinfo(root: Path, cores: int | None = None) -> Path:
    """``ROOT/proc/cpuinfo`` describing Neoverse N1 cores (QEMU's ``-L`` serves it)."""
    return packages.write_arm_cpuinfo(root, cores)


def _check(root: Path) -> dict[str, str]:
    """Import numpy and onnxruntime under QEMU; their versions and the machine they saw."""
    code = ("import json, platform, numpy, onnxruntime; print(json.dumps({'machine': "
            "platform.machine(), 'numpy': numpy.__version__, 'onnxruntime': "
            "onnxruntime.__version__}))")
    out = _run(qemu_python(root) + ["-c", code], "importing numpy and onnxruntime under QEMU",
               env=device_env(), timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def device_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the root's python: none of the host's Python or QEMU settings."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith(("PYTHON", "QEMU_")) or key == "VIRTUAL_ENV":
            del env[key]
    return env


def _run(cmd: list[str], what: str, **kwargs) -> str:
    """Run a step; ArmRootError with the step and its last line of output on failure."""
    return _fetching(lambda: packages.run(cmd, what, prefix="arm root: ", **kwargs))


