"""Debian packages and PyPI wheels for another CPU, fetched from the registries and unpacked.

Shared by the runtime bundles pushed to devices (:mod:`conformance.device.bundle`) and the ARM
loopback device's aarch64 root (:mod:`conformance.device.emulator.arm`):

- :func:`apt_download` fetches ``.deb`` files for a Debian architecture (``arm64``, ``amd64``)
  through a private apt configuration (the host's apt sources with its own lists and status), so
  nothing is installed, the host's dpkg architectures are untouched and no root rights are needed;
- :func:`pip_download` fetches cp311 wheels for a manylinux platform (``--no-deps``);
- :func:`unpack_debs` and :func:`unpack_wheel` put them into a folder.

Every failure is a :class:`FetchError` with one line naming the step and its last words.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Iterator

Say = Callable[[str], None]
# Neoverse N1 (implementer 0x41 Arm, part 0xd0c) with the features QEMU's neoverse-n1 exposes.
_CPUINFO = ("processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 "
            "sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
            "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n")


class FetchError(Exception):
    """A download or unpack step failed; the message is one line that says why."""


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/conformance`` (``~/.cache/conformance`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "conformance"


def host_versions(names) -> dict[str, str]:
    """pip name -> version: this host's where installed, else "" (pip takes the newest), so a
    device runs the same runtime versions as the host it is compared with."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def wheel_platforms(machine: str) -> tuple[str, ...]:
    """manylinux tags pip accepts for ``machine`` (``aarch64``, ``x86_64``); pip matches them
    exactly and some wheels are tagged manylinux2014 only."""
    return tuple(f"{tag}_{machine}" for tag in
                 ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014"))


def apt_download(work: Path, arch: str, packages: list[str], say: Say, prefix: str) -> list[Path]:
    """Download ``packages`` for Debian architecture ``arch`` into ``work/debs``."""
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "status").touch()
    conf = work / "apt.conf"
    conf.write_text(
        f'APT::Architecture "{arch}";\nAPT::Architectures {{ "{arch}"; }};\n'
        f'Dir::State::Lists "{work}/lists";\nDir::State::status "{work}/status";\n'
        f'Dir::Cache "{work}/cache";\nAPT::Sandbox::User "{_user()}";\n')
    env = dict(os.environ, APT_CONFIG=str(conf))
    say(f"{prefix}apt-get update ({arch} package lists)")
    run(["apt-get", "update", "-q"], "apt-get update (no network to the Debian archive?)",
        env=env, check_output=("Err:", "W: Failed"), prefix=prefix)
    say(f"{prefix}apt-get download: {len(packages)} {arch} packages")
    run(["apt-get", "download", "-q"] + list(packages), "apt-get download", env=env,
        cwd=work / "debs", prefix=prefix)
    return sorted((work / "debs").glob("*.deb"))


def unpack_debs(debs: list[Path], dest: Path, prefix: str) -> None:
    """``dpkg -x`` each package into ``dest``."""
    for deb in debs:
        run(["dpkg", "-x", str(deb), str(dest)], "dpkg -x " + deb.name, prefix=prefix)


def pip_download(work: Path, specs: list[str], machine: str, prefix: str) -> list[Path]:
    """cp311 wheels of ``specs`` (``name==version`` or ``name``) for ``machine``, no deps."""
    dest = work / "wheels"
    platforms = [word for tag in wheel_platforms(machine) for word in ("--platform", tag)]
    run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         *platforms, "--python-version", "3.11", "--implementation", "cp",
         "--abi", "cp311", "-d", str(dest)] + specs,
        f"pip download {' '.join(specs)} (no {machine} cp311 wheel, or no network to PyPI?)",
        env=dict(os.environ, PIP_CONSTRAINT=""), prefix=prefix)
    return sorted(dest.glob("*.whl"))


def unpack_wheel(wheel: Path, site: Path) -> None:
    """Unzip a wheel into ``site``; its ``*.data/purelib|platlib`` go there too."""
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        # zipfile drops the executable bits that shared libraries and programs need.
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111:
                os.chmod(site / info.filename, mode)
    for data in site.glob("*.data"):
        for kind in ("purelib", "platlib"):
            if (data / kind).is_dir():
                shutil.copytree(data / kind, site, dirs_exist_ok=True)
        shutil.rmtree(data)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock: concurrent builders (xdist workers, devices) wait for one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(cmd: list[str], what: str, *, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 900, check_output: tuple[str, ...] = (), prefix: str = "") -> str:
    """Run a build step; FetchError with the step and its last line of output on failure."""
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FetchError(f"{prefix}{what} failed: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{prefix}{what} did not finish within {timeout:g} s") from None
    text = proc.stdout + proc.stderr
    bad = [line for line in text.splitlines() if line.startswith(check_output)] if check_output else []
    if proc.returncode != 0 or bad:
        lines = bad or [line for line in text.splitlines() if line.strip()]
        raise FetchError(f"{prefix}{what} failed: "
                         f"{lines[-1].strip() if lines else proc.returncode}")
    return proc.stdout


def write_arm_cpuinfo(root: Path, cores: int | None = None) -> Path:
    """``ROOT/proc/cpuinfo`` describing Neoverse N1 cores. QEMU 7.2's user mode passes the
    host's x86 file through, and ONNX Runtime's CPU detection crashes on it; QEMU's ``-L ROOT``
    (or a bind mount over ``/proc/cpuinfo``) serves this one instead."""
    path = root / "proc" / "cpuinfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_CPUINFO.format(n=n) for n in range(cores or os.cpu_count() or 1)))
    return path


def _user() -> str:
    """apt downloads as this user: the private folders are ours, not ``_apt``'s."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
