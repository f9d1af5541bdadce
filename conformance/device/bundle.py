"""The runtime bundle a device gets: Python 3.11, numpy, ONNX Runtime and LiteRT for its ABI.

A stock phone has no Python. The bundle brings everything the runner needs, its own glibc
and dynamic loader included, built on this host from registries only:

1. Debian bookworm packages for the device's architecture (``apt-get download`` through a private
   apt configuration, :mod:`conformance.device.packages`): CPython 3.11 and its stdlib, glibc,
   libstdc++ and the few libraries the stdlib's extension modules link;
2. cp311 manylinux wheels of numpy, onnxruntime and ai-edge-litert at this host's versions (so
   that device-vs-host differences come from the CPU, not from a release);
3. pruned (docs, tests, converters), compiled to ``.pyc`` (unchecked-hash: valid whatever mtime
   the device gives the files), checked by one import where this host can run it, packed as a
   deterministic ``.tar.gz`` and named by the hash of its contents.

It is cached under ``~/.cache/conformance/bundles/<abi>-<hash>/`` (``bundle.tar.gz``,
``manifest.json``); a recipe file maps what was asked for (ABI, packages, versions) to the hash,
so a later run finds it without the network. The device starts it as
``./ld-linux-*.so.* --library-path LIBS ./usr/bin/python3.11 runner.py`` (:func:`launch_words`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from conformance.device import packages
from conformance.device.packages import FetchError, Say

#: Bump when the recipe below changes in a way the package lists do not show.
BUILDER = 5
#: Debian packages: CPython 3.11 (interpreter + stdlib) and the C/C++ runtime ONNX Runtime and
#: LiteRT need (LiteRT asks for glibc 2.34 and GLIBCXX_3.4.30: bookworm has 2.36 and gcc 12's).
DEBS = ("python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 "
        "libstdc++6 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5 libuuid1").split()
#: PyPI wheels (pip name -> import name); LiteRT is left out where no wheel exists.
WHEELS = {"numpy": "numpy", "onnxruntime": "onnxruntime", "ai-edge-litert": "ai_edge_litert"}
REQUIRED = ("numpy", "onnxruntime")
PYTHON = "usr/bin/python3.11"
SITE = "usr/lib/python3/dist-packages"
STDLIB = "usr/lib/python3.11"
#: Never imported by the runner: removed to keep the push small.
PRUNE = ("usr/share", "usr/sbin", "sbin", "usr/lib/*/gconv", "usr/lib/*/audit", "lib64",
         "etc", "var", f"{STDLIB}/test", f"{STDLIB}/idlelib", f"{STDLIB}/tkinter",
         f"{STDLIB}/turtledemo", f"{STDLIB}/ensurepip", f"{STDLIB}/lib2to3",
         f"{STDLIB}/pydoc_data", f"{STDLIB}/config-3.11-*", f"{SITE}/numpy/*/tests",
         f"{SITE}/numpy/tests", f"{SITE}/numpy/_pyinstaller", f"{SITE}/numpy/f2py",
         f"{SITE}/onnxruntime/transformers", f"{SITE}/onnxruntime/quantization",
         f"{SITE}/onnxruntime/tools", f"{SITE}/onnxruntime/datasets",
         f"{SITE}/ai_edge_litert/aot", f"{SITE}/ai_edge_litert/_pywrap_litert_converter.so",
         f"{SITE}/ai_edge_litert/_pywrap_tensorflow_lite_calibration_wrapper.so",
         f"{SITE}/ai_edge_litert/_pywrap_tfl_calibration.so",
         f"{SITE}/ai_edge_litert/_pywrap_analyzer_wrapper.so",
         f"{SITE}/ai_edge_litert/format_converter_wrapper_pybind11.so",
         f"{SITE}/ai_edge_litert/libLiteRtWebGpuAccelerator.so", f"{SITE}/ai_edge_litert/tools",
         f"{SITE}/ai_edge_litert/vendors", f"{SITE}/ai_edge_litert/libLiteRt.so",
         # the pybind module is self-contained; this copy is for C API users
         f"{SITE}/onnxruntime/capi/libonnxruntime.so.*")


@dataclass(frozen=True)
class Abi:
    """What a device ABI means for the bundle: Debian's and the wheels' names, the loader."""

    name: str        # Android's: arm64-v8a, x86_64
    debian: str      # Debian architecture: arm64, amd64
    machine: str     # uname -m and wheel platform suffix: aarch64, x86_64
    loader: str      # glibc's dynamic loader

    @property
    def triplet(self) -> str:
        return f"{self.machine}-linux-gnu"

    @property
    def library_path(self) -> list[str]:
        """Library folders, relative to the bundle root."""
        return [f"lib/{self.triplet}", f"usr/lib/{self.triplet}"]


ABIS = {
    "arm64-v8a": Abi("arm64-v8a", "arm64", "aarch64", "ld-linux-aarch64.so.1"),
    "x86_64": Abi("x86_64", "amd64", "x86_64", "ld-linux-x86-64.so.2"),
}


class BundleError(FetchError):
    """No bundle for this ABI, or it cannot be built; one line that says why."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle in the host's cache."""

    abi: Abi
    hash: str            # sha256 of the unpacked contents (names, modes, bytes, links)
    tarball: Path
    manifest: dict

    @property
    def name(self) -> str:
        return f"{self.abi.name}-{self.hash[:16]}"

    @property
    def size(self) -> int:
        return self.tarball.stat().st_size


def abi_of(name: str) -> Abi:
    """The :class:`Abi` for a device's ``ro.product.cpu.abi``; BundleError for others."""
    if name in ABIS:
        return ABIS[name]
    raise BundleError(f"no runtime bundle for ABI {name or '(none reported)'!r}: bundles exist "
                      f"for {', '.join(ABIS)}; a native runner can be given with --device-runner")


def cache_dir() -> Path:
    """``$CONFORMANCE_BUNDLES``, else ``~/.cache/conformance/bundles``."""
    found = os.environ.get("CONFORMANCE_BUNDLES")
    return Path(found) if found else packages.cache_home() / "bundles"


def wanted_wheels() -> dict[str, str]:
    """pip name -> version to bundle: this host's where installed, else the newest."""
    return packages.host_versions(WHEELS)


def recipe(abi: Abi) -> dict:
    """What a bundle is built from; its hash keys the cache without touching the network."""
    return {"builder": BUILDER, "abi": abi.name, "debs": list(DEBS), "wheels": wanted_wheels(),
            "prune": list(PRUNE), "python": f"{sys.version_info[0]}.{sys.version_info[1]}"}


def ensure(abi_name: str, *, say: Say | None = None, root: Path | None = None) -> Bundle:
    """The bundle for ``abi_name``, built first if the cache lacks it (concurrent callers wait
    for one build)."""
    abi = abi_of(abi_name)
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    root = Path(root or cache_dir())
    wanted = recipe(abi)
    key = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    pointer = root / "recipes" / f"{abi.name}-{key}.json"
    found = _cached(root, pointer)
    if found is not None:
        return found
    with packages.locked(root / f"{abi.name}.lock"):
        found = _cached(root, pointer)  # built by another process while we waited
        if found is None:
            found = _build(abi, wanted, root, say)
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.write_text(json.dumps({"hash": found.hash, "recipe": wanted}))
    return found


def _cached(root: Path, pointer: Path) -> Bundle | None:
    try:
        digest = json.loads(pointer.read_text())["hash"]
        folder = next(root.glob(f"*-{digest[:16]}"))
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration):
        return None
    tarball = folder / "bundle.tar.gz"
    if manifest.get("hash") != digest or not tarball.is_file():
        return None
    return Bundle(ABIS[manifest["abi"]], digest, tarball, manifest)


def _build(abi: Abi, wanted: dict, root: Path, say: Say) -> Bundle:
    start, prefix = time.monotonic(), f"bundle {abi.name}: "
    say(f"{prefix}building the device runtime (once; cached in {root})")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{abi.name}.building-", dir=root) as tmp:
        work, tree = Path(tmp) / "work", Path(tmp) / "tree"
        tree.mkdir()
        debs = packages.apt_download(work, abi.debian, list(DEBS), say, prefix)
        say(f"{prefix}unpacking {len(debs)} Debian packages")
        packages.unpack_debs(debs, tree, prefix)
        versions = _fetch_wheels(work, abi, wanted["wheels"], tree / SITE, say, prefix)
        _prune(tree)
        _link_loader(tree, abi)
        _compile(tree, say, prefix)
        found = _check(tree, abi, prefix)
        digest = content_hash(tree)
        folder = root / f"{abi.name}-{digest[:16]}"
        staging = Path(tmp) / "out"
        staging.mkdir()
        say(f"{prefix}packing")
        unpacked = _pack(tree, staging / "bundle.tar.gz")
        manifest = {"abi": abi.name, "hash": digest, "loader": abi.loader,
                    "library_path": abi.library_path, "python": PYTHON, "site": SITE,
                    "runtimes": versions, "checked": found, "unpacked_bytes": unpacked,
                    "compressed_bytes": (staging / "bundle.tar.gz").stat().st_size,
                    "built_in_s": round(time.monotonic() - start, 1)}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    say(f"{prefix}ready in {time.monotonic() - start:.0f} s: {folder.name} "
        f"({unpacked / 2**20:.0f} MiB unpacked, {manifest['compressed_bytes'] / 1e6:.0f} MB packed)")
    return Bundle(abi, digest, folder / "bundle.tar.gz", manifest)


def _fetch_wheels(work: Path, abi: Abi, wanted: dict[str, str], site: Path, say: Say,
                  prefix: str) -> dict[str, str]:
    """Download and unpack each wheel; an optional one (LiteRT) without a wheel is left out."""
    versions = {}
    for name, version in wanted.items():
        spec = f"{name}=={version}" if version else name
        say(f"{prefix}pip download {spec} ({abi.machine}, cp311)")
        try:
            wheels = packages.pip_download(work / name, [spec], abi.machine, prefix)
        except FetchError:
            if name in REQUIRED:
                raise
            say(f"{prefix}no {abi.machine} cp311 wheel of {spec}: left out")
            continue
        for wheel in wheels:
            packages.unpack_wheel(wheel, site)
        versions[WHEELS[name]] = wheels[0].name.split("-")[1]
    return versions


def _prune(tree: Path) -> None:
    for pattern in PRUNE:
        for path in tree.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in list(tree.rglob("*")):
        if path.is_symlink() and os.path.isabs(os.readlink(path)):
            # Debian's absolute links point into the host's /: made relative, or dropped.
            target = tree / os.readlink(path).lstrip("/")
            path.unlink()
            if target.exists():
                path.symlink_to(os.path.relpath(target, path.parent))
        elif path.suffix == ".a" or path.name == "__pycache__":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _link_loader(tree: Path, abi: Abi) -> None:
    """The loader at the bundle's top (``./ld-linux-*.so.*``), as the device starts it."""
    real = tree / "lib" / abi.triplet / abi.loader
    if not real.is_file():
        raise BundleError(f"bundle {abi.name}: libc6 brought no {real.relative_to(tree)}")
    top = tree / abi.loader
    if top.exists() or top.is_symlink():
        top.unlink()
    top.symlink_to(os.path.relpath(real, tree))


def _compile(tree: Path, say: Say, prefix: str) -> None:
    """``.pyc`` for the stdlib and the wheels, so the device never compiles (3.11 only: the
    bytecode must be the device interpreter's)."""
    if sys.version_info[:2] != (3, 11):
        say(f"{prefix}this host's Python is not 3.11: no .pyc (the device compiles on import)")
        return
    import compileall

    for folder in (tree / STDLIB, tree / SITE):
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                # ddir: the bytecode names files by their place in the bundle, not this build's
                # folder (the same bundle bytes from every build).
                compileall.compile_dir(folder, quiet=2, workers=0, ddir=f"/{folder.relative_to(tree)}",
                                       invalidation_mode=_unchecked())
            finally:
                sys.stdout = stdout


def _unchecked():
    import py_compile

    return py_compile.PycInvalidationMode.UNCHECKED_HASH


def launch_words(root: str, abi: Abi, script: str) -> list[str]:
    """The command that runs ``script`` with the bundle unpacked at ``root`` (device paths)."""
    libs = ":".join(f"{root}/{p}" for p in abi.library_path)
    return [f"{root}/{abi.loader}", "--library-path", libs, f"{root}/{PYTHON}", script]


def launch_env(root: str, workdir: str) -> dict[str, str]:
    """The environment the bundle's Python needs on a device: its own home and paths, UTF-8
    without locale files, a temporary folder (Android has no /tmp), HOME and USER
    (``getpwuid`` finds no shell user there)."""
    return {"PYTHONHOME": f"{root}/usr", "PYTHONPATH": f"{root}/{SITE}", "PYTHONUTF8": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "TMPDIR": f"{workdir}/tmp", "HOME": workdir, "USER": "shell"}


def _check(tree: Path, abi: Abi, prefix: str) -> dict[str, str]:
    """Import the runtimes with the bundle's own loader, where this host can run it (natively,
    or under qemu-aarch64-static); empty when it cannot."""
    import platform

    code = ("import json, platform, numpy, onnxruntime\nv = {'machine': platform.machine(), "
            "'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__}\ntry:\n"
            " import ai_edge_litert.interpreter as l; v['litert'] = __import__('ai_edge_litert')"
            ".__version__\nexcept ImportError:\n pass\nprint(json.dumps(v))")
    words = launch_words(str(tree), abi, "-c") + [code]
    if abi.machine != platform.machine():
        qemu = shutil.which("qemu-aarch64-static") if abi.machine == "aarch64" else None
        if qemu is None:
            return {}
        # An ARM /proc/cpuinfo through -L: ONNX Runtime crashes on QEMU's x86 one.
        prefix_dir = tree.parent / "qemu-prefix"
        packages.write_arm_cpuinfo(prefix_dir)
        words = [qemu, "-cpu", "neoverse-n1", "-L", str(prefix_dir)] + words
    with tempfile.TemporaryDirectory() as home:  # ONNX Runtime writes under HOME: not the tree
        env = {"PATH": "/nonexistent", **launch_env(str(tree), home)}
        env["TMPDIR"] = home
        try:
            proc = subprocess.run(words, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"{prefix}checking the bundle failed: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"status {proc.returncode}"])[-1]
        raise BundleError(f"{prefix}importing numpy and onnxruntime from the bundle failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def content_hash(tree: Path) -> str:
    """sha256 over every entry's relative path, kind, executable bit and bytes or link target."""
    digest = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} {os.stat(path).st_mode & 0o111 != 0}\n".encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(f"D {rel}\n".encode())
    return digest.hexdigest()


def _pack(tree: Path, out: Path) -> int:
    """A deterministic tar.gz (sorted, owner 0, fixed mtime); returns the unpacked bytes."""
    import gzip

    total = 0

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 1_700_000_000
        return info

    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                               compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(tree.rglob("*")):
                tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False,
                        filter=clean)
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
    return total


def files_of(bundle: Bundle) -> int:
    """How many entries the bundle's tarball holds (for messages)."""
    with tarfile.open(bundle.tarball) as tar:
        return sum(1 for _ in tar)


