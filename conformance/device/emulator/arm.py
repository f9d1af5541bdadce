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

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

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
# Neoverse N1 (implementer 0x41 Arm, part 0xd0c) with the features QEMU's neoverse-n1 exposes.
_CPUINFO = ("processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 "
            "sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
            "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n")


class ArmRootError(Exception):
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
    versions = {}
    for name in WHEELS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


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
    with _locked(root.parent / (root.name + ".lock")):
        if not is_ready(root):  # another process may have built it while we waited
            _build(root, say)
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        for deb in debs:
            _run(["dpkg", "-x", str(deb), str(staging)], "dpkg -x " + deb.name)
        wheels = _pip_download(work, versions, say)
        say(f"arm root: [5/6] unpacking {len(wheels)} wheels into /{SITE}")
        for wheel in wheels:
            _unpack_wheel(wheel, staging / SITE)
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


def _apt_download(work: Path, say: Callable[[str], None]) -> list[Path]:
    """Download the arm64 .debs through a private apt state under ``work``."""
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "status").touch()
    conf = work / "apt.conf"
    conf.write_text(
        'APT::Architecture "arm64";\nAPT::Architectures { "arm64"; };\n'
        f'Dir::State::Lists "{work}/lists";\nDir::State::status "{work}/status";\n'
        f'Dir::Cache "{work}/cache";\nAPT::Sandbox::User "{_user()}";\n')
    env = dict(os.environ, APT_CONFIG=str(conf))
    say("arm root: [1/6] apt-get update (arm64 package lists)")
    _run(["apt-get", "update", "-q"], "apt-get update (no network to the Debian archive?)",
         env=env, check_output=("Err:", "W: Failed"))
    say(f"arm root: [2/6] apt-get download: {len(DEBS)} arm64 packages")
    _run(["apt-get", "download", "-q"] + list(DEBS), "apt-get download",
         env=env, cwd=work / "debs")
    return sorted((work / "debs").glob("*.deb"))


def _pip_download(work: Path, versions: dict[str, str], say: Callable[[str], None],
                  ) -> list[Path]:
    """The aarch64 cp311 wheels (no dependencies: the runner needs these two only)."""
    specs = [f"{name}=={v}" if v else name for name, v in versions.items()]
    say(f"arm root: [4/6] pip download {' '.join(specs)} for {WHEEL_PLATFORMS[0]} cp311")
    dest = work / "wheels"
    platforms = [word for tag in WHEEL_PLATFORMS for word in ("--platform", tag)]
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
          *platforms, "--python-version", "3.11", "--implementation", "cp",
          "--abi", "cp311", "-d", str(dest)] + specs,
         f"pip download {' '.join(specs)} (no aarch64 cp311 wheel, or no network to PyPI?)",
         env=dict(os.environ, PIP_CONSTRAINT=""))
    return sorted(dest.glob("*.whl"))


def _unpack_wheel(wheel: Path, site: Path) -> None:
    """Unzip a wheel into ``site``; its ``*.data/purelib|platlib`` go there too."""
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    for data in site.glob("*.data"):
        for kind in ("purelib", "platlib"):
            if (data / kind).is_dir():
                shutil.copytree(data / kind, site, dirs_exist_ok=True)
        shutil.rmtree(data)


def write_cpuinfo(root: Path, cores: int | None = None) -> Path:
    """``ROOT/proc/cpuinfo`` describing Neoverse N1 cores (QEMU's ``-L`` serves it)."""
    path = root / "proc" / "cpuinfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_CPUINFO.format(n=n) for n in range(cores or os.cpu_count() or 1)))
    return path


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


def _run(cmd: list[str], what: str, *, env: dict | None = None, cwd: Path | None = None,
         timeout: float = 900, check_output: tuple[str, ...] = ()) -> str:
    """Run a build step; ArmRootError with the step and its last line of output on failure."""
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ArmRootError(f"arm root: {what} failed: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ArmRootError(f"arm root: {what} did not finish within {timeout:g} s") from None
    text = proc.stdout + proc.stderr
    bad = [line for line in text.splitlines() if line.startswith(check_output)] if check_output else []
    if proc.returncode != 0 or bad:
        lines = bad or [line for line in text.splitlines() if line.strip()]
        raise ArmRootError(f"arm root: {what} failed: {lines[-1].strip() if lines else proc.returncode}")
    return proc.stdout


def _user() -> str:
    """apt downloads as this user: the private folders are ours, not ``_apt``'s."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
