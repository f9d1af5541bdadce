"""A small host-side wrapper around the real ``adb`` binary.

Every call has a timeout, runs with stdin from /dev/null (unless it streams), and fails with an
:class:`AdbError` that names the device, the step and adb's own message. Everything sent to
``adb shell`` is quoted with :func:`shlex.quote`, so no name or path can inject a command.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

#: getprop keys behind :meth:`Adb.device_facts`.
FACT_PROPS = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "android_version": "ro.build.version.release",
    "abi": "ro.product.cpu.abi",
}


class AdbError(Exception):
    """An adb step failed; the message names the device, the step and adb's own words.

    Deliberately not a ``BackendError``: this module is below the backends, and
    ``conformance.backends.adb`` turns it into one."""

    def __init__(self, serial: str | None, step: str, message: str):
        self.serial, self.step, self.adb_message = serial, step, message.strip()
        where = f"device {serial}" if serial else "adb"
        super().__init__(f"{where}: {step} failed: {self.adb_message or 'no message from adb'}")


@dataclass
class DeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)


class Adb:
    """The ``adb`` client: found on PATH unless given, server port from the environment.

    ``server_port`` (or ``ANDROID_ADB_SERVER_PORT``) selects the adb server; tests use a
    private one so they never touch a developer's real devices.
    """

    def __init__(self, path: str | None = None, *, server_port: int | None = None,
                 timeout: float = 30.0):
        found = path or shutil.which("adb")
        if not found or not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise AdbError(None, "find adb", f"no adb executable at {path!r}" if path else
                           "adb is not on PATH (install platform-tools, or pass --adb=PATH)")
        self.path, self.timeout = found, timeout
        self.env = dict(os.environ)
        if server_port is not None:
            self.env["ANDROID_ADB_SERVER_PORT"] = str(server_port)

    def run(self, args: list[str], *, serial: str | None = None, step: str,
            timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``adb [-s SERIAL] ARGS``; AdbError on a non-zero exit or a timeout."""
        cmd = [self.path] + (["-s", serial] if serial else []) + args
        limit = timeout or self.timeout
        try:
            proc = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise AdbError(serial, step, f"adb did not answer within {limit:g} s") from None
        except OSError as exc:
            raise AdbError(serial, step, f"cannot run {self.path}: {exc.strerror}") from None
        if check and proc.returncode != 0:
            raise AdbError(serial, step, _text(proc.stderr) or _text(proc.stdout)
                           or f"adb exited with status {proc.returncode}")
        return proc

    def popen(self, args: list[str], *, serial: str) -> subprocess.Popen:
        """Start a long-lived adb command with pipes (a streaming ``adb shell``)."""
        return subprocess.Popen([self.path, "-s", serial] + args, env=self.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)

    def devices(self) -> list[DeviceEntry]:
        """The devices the adb server sees (``adb devices -l``)."""
        out = _text(self.run(["devices", "-l"], step="devices").stdout)
        entries = []
        for line in out.splitlines():
            if not line.strip() or line.startswith(("List of devices", "*")):
                continue
            serial, state, *rest = line.split()
            details = dict(item.split(":", 1) for item in rest if ":" in item)
            entries.append(DeviceEntry(serial, state, details))
        return entries

    def connect(self, serial: str) -> None:
        """``adb connect HOST:PORT`` and check it worked (adb exits 0 even when it fails)."""
        out = _text(self.run(["connect", serial], step="connect", check=False).stdout)
        states = {d.serial: d.state for d in self.devices()}
        if states.get(serial) != "device":
            # Clear the "offline" entry a failed attempt leaves behind.
            self.run(["disconnect", serial], step="disconnect", check=False)
            raise AdbError(serial, "connect", out or f"state {states.get(serial, 'unknown')}")

    def disconnect(self, serial: str) -> None:
        self.run(["disconnect", serial], step="disconnect", check=False)

    def ensure_device(self, serial: str) -> None:
        """Make ``serial`` usable: connect HOST:PORT serials adb does not know yet."""
        states = {d.serial: d.state for d in self.devices()}
        if states.get(serial) == "device":
            return
        if states.get(serial, "offline") == "offline" and _looks_like_host_port(serial):
            if serial in states:  # a stale entry from an earlier failed attempt
                self.disconnect(serial)
            self.connect(serial)
            return
        seen = ", ".join(f"{s} ({st})" for s, st in states.items()) or "none"
        why = f"is {states[serial]}" if serial in states else "is not known to adb"
        raise AdbError(serial, "find device", f"{serial} {why}; devices adb sees: {seen}")

    def shell(self, serial: str, argv: list[str], *, step: str = "shell",
              timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command on the device; every word is quoted (no injection)."""
        return self.run(["shell", shell_join(argv)], serial=serial, step=step,
                        timeout=timeout, check=check)

    def push(self, serial: str, local: str, remote: str, timeout: float | None = None) -> None:
        self.run(["push", local, remote], serial=serial, step="push", timeout=timeout)

    def pull(self, serial: str, remote: str, local: str, timeout: float | None = None) -> None:
        self.run(["pull", remote, local], serial=serial, step="pull", timeout=timeout)

    def forward(self, serial: str, device_port: int, host_port: int = 0) -> int:
        """``adb forward tcp:HOST tcp:DEVICE``; returns the host port (adb picks one for 0)."""
        proc = self.run(["forward", f"tcp:{host_port}", f"tcp:{device_port}"], serial=serial,
                        step="forward")
        if host_port:
            return host_port
        match = re.search(r"\d+", _text(proc.stdout))
        if not match:
            raise AdbError(serial, "forward", f"no port in adb's answer {_text(proc.stdout)!r}")
        return int(match.group())

    def remove_forward(self, serial: str, host_port: int) -> None:
        self.run(["forward", "--remove", f"tcp:{host_port}"], serial=serial,
                 step="forward --remove", check=False, timeout=5)

    def getprop(self, serial: str, name: str) -> str:
        return _text(self.shell(serial, ["getprop", name], step="getprop").stdout).strip()

    def device_facts(self, serial: str) -> dict[str, str]:
        """Model, manufacturer, Android version and ABI (one shell call for all four)."""
        script = "; ".join(f"getprop {shlex.quote(p)}" for p in FACT_PROPS.values())
        out = _text(self.run(["shell", script], serial=serial, step="getprop").stdout)
        lines = out.splitlines() + [""] * len(FACT_PROPS)
        return {key: lines[i].strip() for i, key in enumerate(FACT_PROPS)}

    def kill_server(self) -> None:
        self.run(["kill-server"], step="kill-server", check=False, timeout=10)


def shell_join(argv: list[str]) -> str:
    """One command line for ``adb shell`` in which every word is a literal."""
    return " ".join(shlex.quote(str(word)) for word in argv)


def _looks_like_host_port(serial: str) -> bool:
    host, sep, port = serial.rpartition(":")
    return bool(sep and host and port.isdigit())


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace").strip()
