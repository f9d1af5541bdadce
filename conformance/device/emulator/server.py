"""The loopback device's server: the device side of the ADB protocol over TCP.

``/data/local/tmp`` is a sandbox folder on the host. On the bare device (the default) shell
commands run in a root of their own with busybox and nothing else (:mod:`.bare`); on the
preinstalled one they run on the host inside the sandbox with a ``python3`` (this host's, or the
aarch64 root's under QEMU, see :mod:`.arm`).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import tempfile
import threading
from pathlib import Path

from conformance.device.adb import shell_join
from conformance.device.emulator import arm, bare
from conformance.device.emulator.adbwire import Connection
from conformance.device.emulator.shell import ShellEnv, serve_shell, serve_tcp
from conformance.device.emulator.sync import Sandbox, serve_sync

FEATURES = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir"
DEFAULT_PROPS = {
    "ro.product.name": "conformance_loopback",
    "ro.product.model": "Loopback",
    "ro.product.device": "loopback",
    "ro.product.manufacturer": "Conformance",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "x86_64",
}
#: ro.kernel.qemu=1 is what Android's own emulators say: hosts allow it longer timeouts.
ARM_PROPS = {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a",
             "ro.product.model": "Loopback ARM", "ro.product.device": "loopback_arm",
             "ro.kernel.qemu": "1"}
_SAFE_PATH = re.compile(r"^[\w@%+=:,./-]+$")


class LoopbackServer:
    """Accepts adb server connections and serves sync, shell, exec and tcp services."""

    def __init__(self, sandbox: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0,
                 props: dict[str, str] | None = None, python: str | None = None,
                 arm_root: str | os.PathLike | None = None, bare_abi: str | None = None,
                 noexec: bool = False, quota_mb: int | None = None):
        """``bare_abi`` (x86_64 or arm64-v8a): a device as bare as a phone (:mod:`.bare`; the
        process must be in its own user and mount namespace), ``noexec``/``quota_mb`` shape its
        /data/local/tmp. Otherwise a friendly device whose ``python3`` is this host's, or, with
        ``arm_root`` (:func:`.arm.ensure_root`), the aarch64 root's under QEMU."""
        arm_props = ARM_PROPS if (arm_root or bare_abi == "arm64-v8a") else {}
        self.props = dict(DEFAULT_PROPS, **arm_props, **(props or {}))
        self.sandbox = Sandbox(sandbox)
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self._support = tempfile.TemporaryDirectory(prefix="adb-loopback-")
        self._bare = None
        if bare_abi:
            try:
                self._bare = bare.BareRoot(self.sandbox.root, bare_abi, self.props,
                                           noexec=noexec, quota_mb=quota_mb)
            except BaseException:
                self.sock.close()
                raise
            self.shell_env = bare.BareShellEnv(self._bare.root, bare_abi)
        else:
            if arm_root:
                programs = arm.device_programs(Path(arm_root))
            else:
                programs = {"python3": [python or sys.executable]}
            self.shell_env = ShellEnv(self._shell_alias(), self._make_bin(programs),
                                      str(self.sandbox.root))
        self._stopped = threading.Event()

    @property
    def banner(self) -> str:
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        # Values must not contain ':' (the host splits the banner on it).
        props = ";".join(f"{k}={self.props[k].replace(':', '_')}" for k in keys)
        return f"device::{props};features={FEATURES}"

    def route(self, service: str):
        """The handler for an OPEN, or None to refuse it."""
        if service.startswith(("shell:", "shell,", "exec:")):
            return lambda stream, svc: serve_shell(stream, svc, self.shell_env)
        if service == "sync:":
            return lambda stream, _svc: serve_sync(stream, self.sandbox)
        if service.startswith("tcp:"):
            return serve_tcp
        return None

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`."""
        while not self._stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                break
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(client, self.banner, self.route)
            threading.Thread(target=conn.serve, daemon=True, name="adb-connection").start()

    def stop(self) -> None:
        self._stopped.set()
        try:
            self.sock.close()
        finally:
            if self._bare is not None:
                self._bare.close()
            self._support.cleanup()

    def _shell_alias(self) -> str:
        """A shell-safe name for the sandbox (it replaces /data/local/tmp inside commands)."""
        root = str(self.sandbox.root)
        if _SAFE_PATH.match(root):
            return root
        alias = Path(self._support.name) / "tmp"
        alias.symlink_to(root)
        return str(alias)

    def _make_bin(self, programs: dict[str, list[str]]) -> str:
        """``getprop`` and ``programs`` (name -> command prefix) for device shells (the host's
        PATH follows them)."""
        bin_dir = Path(self._support.name) / "bin"
        bin_dir.mkdir()
        cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n"
                        for k, v in self.props.items())
        listing = "".join(f"echo {shlex.quote(f'[{k}]: [{v}]')}\n" for k, v in self.props.items())
        _write_script(bin_dir / "getprop",
                      f'if [ -z "$1" ]; then\n{listing}exit 0\nfi\n'
                      f'case "$1" in\n{cases}  *) echo ;;\nesac\n')
        for name, prefix in programs.items():
            _write_script(bin_dir / name, f'exec {shell_join(prefix)} "$@"\n')
        return str(bin_dir)


def _write_script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
