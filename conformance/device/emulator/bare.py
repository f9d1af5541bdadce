"""The bare loopback device: as little as a stock phone gives, in both ABIs.

Shell commands run in a root of their own (a read-only tmpfs, ``chroot``), built inside a user
and mount namespace (``unshare -Urm``: no root rights needed, nothing leaks to the host):

- ``/system/bin``: busybox-static's ``sh`` and a toybox-like set of commands, and ``getprop``;
  ``PATH=/system/bin``, so ``command -v python3`` finds nothing and no host library is reachable;
- ``/data/local/tmp``: the sandbox folder, the only writable place (``--noexec`` mounts it
  noexec, ``--quota-mb`` puts a tmpfs of that size under it: a full or noexec phone);
- ``/proc``, ``/dev``, ``/sys`` from the host (ONNX Runtime reads ``/sys/devices/system/cpu``);
  no ``/tmp``, no ``/lib``, no ``/usr``: a pushed glibc program runs only with its own loader.

For arm64-v8a, ``qemu-aarch64-static`` is registered with binfmt_misc in that user namespace
(Linux 6.7+), so aarch64 programs pushed to the device run as a phone's kernel would run them,
with nothing to lean on (``QEMU_CPU=neoverse-n1``, and an ARM ``/proc/cpuinfo`` bound over the
host's, which ONNX Runtime's CPU detection would crash on).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conformance.device import packages
from conformance.device.emulator.sync import DEVICE_ROOT

NAMESPACE_FLAG = "CONFORMANCE_LOOPBACK_NAMESPACE"
#: What Android's toybox offers that a runner's host side uses, and then some.
TOOLBOX = ("sh ls cat mkdir rmdir rm mv cp ln chmod df du tar gzip zcat sha256sum md5sum wc "
           "stat uname id env echo printf sleep kill ps head tail grep sed test true false "
           "touch find xargs basename dirname readlink realpath date which nproc").split()
# The standard registration (QEMU's scripts/qemu-binfmt-conf.sh), F: the kernel opens QEMU now,
# so it runs inside the device's root, where there is no QEMU.
_AARCH64_MAGIC = (r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
                  r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff")
BINFMT = "/proc/sys/fs/binfmt_misc"


class BareDeviceError(Exception):
    """The bare device cannot be set up here; one line that says why."""


def reexec_in_namespace(argv: list[str]) -> None:
    """Run this command again inside a new user and mount namespace (does not return), unless
    it already is there."""
    if os.environ.get(NAMESPACE_FLAG):
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        raise BareDeviceError("unshare is not on PATH (util-linux); --preinstalled needs none")
    env = dict(os.environ, **{NAMESPACE_FLAG: "1"})
    os.execve(unshare, [unshare, "-Urm", "--propagation", "private", sys.executable, "-m",
                        "conformance.device.emulator", *argv], env)


def find_busybox() -> str:
    """A static busybox (the device's root has no libc for a dynamic one)."""
    found = shutil.which("busybox") or ("/bin/busybox" if os.path.exists("/bin/busybox") else None)
    if found is None:
        raise BareDeviceError("busybox is not on PATH (Debian: apt-get install busybox-static)")
    with open(found, "rb") as f:
        head = f.read(4096)
    if head[:4] != b"\x7fELF" or b"ld-linux" in head:  # a dynamic one names its loader there
        raise BareDeviceError(f"{found} is not a static busybox (Debian: apt-get install "
                              "busybox-static)")
    return found


class BareShellEnv:
    """How the bare device runs a command: ``/system/bin/sh -c`` chrooted into its root."""

    def __init__(self, root: Path, abi: str):
        self.root = root
        self.env = {"PATH": "/system/bin", "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system",
                    "HOSTNAME": "loopback"}
        self.prelude = ""
        if abi == "arm64-v8a":
            self.env["QEMU_CPU"] = "neoverse-n1"  # QEMU reads it; a Cortex-A76-class core
            # busybox is the host's, and its sh runs applets without a PATH lookup: the machine
            # its uname reports is made the device's (aarch64 programs see aarch64 anyway).
            self.prelude = ('uname() { /system/bin/busybox uname "$@" | '
                            '/system/bin/busybox sed s/x86_64/aarch64/g; }\n')

    def spawn(self, command: str, merge_stderr: bool) -> subprocess.Popen:
        root = str(self.root)
        command = self.prelude + (command or "exec sh")

        def enter() -> None:
            os.chroot(root)
            os.chdir("/")

        return subprocess.Popen(
            ["/system/bin/sh", "-c", command], env=self.env, preexec_fn=enter,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            start_new_session=True, bufsize=0)


class BareRoot:
    """The device's root, mounted (inside the namespace) in a fresh folder; :meth:`close`
    unmounts it. Everything it holds lives in a tmpfs: nothing is ever deleted through its
    bind mounts (which lead to the host's /dev and to the sandbox)."""

    def __init__(self, sandbox: Path, abi: str, props: dict[str, str], *,
                 noexec: bool = False, quota_mb: int | None = None):
        self.support = Path(tempfile.mkdtemp(prefix="adb-loopback-bare-"))
        try:
            _mount("-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", self.support)
            self.root = _build_root(self.support, sandbox, abi, props, noexec=noexec,
                                    quota_mb=quota_mb)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.support)], capture_output=True)  # with what is below
        try:
            self.support.rmdir()  # empty once unmounted; never a recursive delete
        except OSError:
            pass


def _build_root(support: Path, sandbox: Path, abi: str, props: dict[str, str], *,
                noexec: bool, quota_mb: int | None) -> Path:
    root = support / "root"
    root.mkdir()
    _mount("--bind", root, root)  # a mount of its own, to be made read-only at the end
    for sub in ("system/bin", "data/local/tmp", "proc", "dev", "sys"):
        (root / sub).mkdir(parents=True)
    _toolbox(root / "system" / "bin", props, abi)
    if quota_mb:
        # Under the sandbox itself: pushes (served outside the chroot) fill it too.
        _mount("-t", "tmpfs", "-o", f"size={int(quota_mb)}m", "tmpfs", sandbox)
    _mount("--bind", sandbox, root / DEVICE_ROOT.lstrip("/"))
    if noexec:
        _mount("-o", "remount,bind,noexec", root / DEVICE_ROOT.lstrip("/"))
    for host in ("/proc", "/dev", "/sys"):
        _mount("--rbind", host, root / host.lstrip("/"))
    if abi == "arm64-v8a":
        cpuinfo = packages.write_arm_cpuinfo(support / "arm")
        _mount("--bind", cpuinfo, root / "proc" / "cpuinfo")
        _register_qemu()
    _mount("-o", "remount,ro,bind", root)
    return root


def _toolbox(bin_dir: Path, props: dict[str, str], abi: str) -> None:
    busybox = find_busybox()
    shutil.copy2(busybox, bin_dir / "busybox")
    for name in TOOLBOX:
        (bin_dir / name).symlink_to("busybox")
    cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n" for k, v in props.items())
    listing = "".join(f"echo {shlex.quote(f'[{k}]: [{v}]')}\n" for k, v in props.items())
    _script(bin_dir / "getprop", f'if [ -z "$1" ]; then\n{listing}exit 0\nfi\n'
                                 f'case "$1" in\n{cases}  *) echo ;;\nesac\n')


def _script(path: Path, body: str) -> None:
    path.write_text("#!/system/bin/sh\n" + body)
    path.chmod(0o755)


def _register_qemu() -> None:
    from conformance.device.emulator import arm

    qemu = arm.find_qemu()
    try:
        _mount("-t", "binfmt_misc", "binfmt_misc", BINFMT)
        # The kernel unescapes the \\xNN text itself (raw bytes would hold NULs it stops at).
        magic, mask = _AARCH64_MAGIC
        with open(f"{BINFMT}/register", "w") as f:
            f.write(f":qemu-aarch64:M::{magic}:{mask}:{os.path.realpath(qemu)}:F")
    except (BareDeviceError, OSError) as exc:
        raise BareDeviceError(
            "cannot register qemu-aarch64 with binfmt_misc in a user namespace (Linux 6.7+ "
            f"needed; this is {os.uname().release}): {exc}; --preinstalled runs python3 "
            "under QEMU without it") from None


def _mount(*args) -> None:
    proc = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BareDeviceError(f"mount {' '.join(map(str, args))} failed: "
                              f"{proc.stderr.strip() or proc.returncode}")
