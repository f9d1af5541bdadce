"""Put a runtime bundle (:mod:`conformance.device.bundle`) on a device, once, and start it.

On the device, under the work folder ``DIR``::

    DIR/runtime/<abi>-<hash>/            the unpacked bundle; ``.installed`` (its hash) written last
    DIR/runtime/<abi>-<hash>.parts/NNN   the packed bundle in 8 MiB parts while it is pushed

A device that holds ``.installed`` with the same hash gets nothing pushed. Otherwise the host
checks free space (``df``), checks that the folder may run programs (the bundle's loader is
pushed alone and runs ``--version``: a ``noexec`` mount fails here, before the large push),
pushes the parts that are missing or short (an interrupted push resumes where it stopped),
checks their sha256 on the device, unpacks them with the device's ``tar`` and writes the marker.
Only the device's ``sh``, ``df``, ``cat``, ``wc``, ``sha256sum``, ``tar``, ``mkdir``, ``mv``
and ``rm`` are used: toybox (Android 6+) and busybox have them all.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
import tarfile
import time
from pathlib import Path

from conformance.device.adb import Adb, AdbError
from conformance.device.bundle import Bundle, BundleError, Say, launch_env, launch_words
from conformance.device import packages

PART = 8 * 2**20
MARKER = ".installed"


def runtime_dir(base_dir: str) -> str:
    return posixpath.join(base_dir, "runtime")


def install(adb: Adb, serial: str, base_dir: str, bundle: Bundle, say: Say) -> str:
    """The device folder holding ``bundle`` unpacked; pushed first unless already there."""
    home = runtime_dir(base_dir)
    root, parts_dir = posixpath.join(home, bundle.name), posixpath.join(home, bundle.name + ".parts")
    with packages.locked(Path(bundle.tarball).parent / f"push-{_safe(serial)}.lock"):
        state = _sh(adb, serial, f"cat {q(root)}/{MARKER} 2>/dev/null; echo ::; "
                    f"wc -c {q(parts_dir)}/* 2>/dev/null; true", "look for the runtime bundle")
        marker, _, listing = state.partition("::")
        if marker.strip() == bundle.hash:
            return root
        parts = _parts(bundle)
        have = _sizes(listing)
        missing = [p for p in parts if have.get(p.name) != p.stat().st_size]
        _check_space(adb, serial, base_dir, bundle, sum(p.stat().st_size for p in missing))
        _check_exec(adb, serial, home, bundle)
        if len(missing) < len(parts):
            say(f"device {serial}: resuming an interrupted push of {bundle.name}: "
                f"{len(parts) - len(missing)} of {len(parts)} parts are already there")
        _push_parts(adb, serial, parts_dir, bundle, missing, say)
        _verify(adb, serial, parts_dir, bundle)
        _unpack(adb, serial, home, root, parts_dir, bundle)
        say(f"device {serial}: runtime {bundle.name} installed in {root}")
        return root


def runner_command(root: str, bundle: Bundle, workdir: str, script: str) -> str:
    """The device shell line (before the runner's own flags) that starts ``script`` with the
    bundle's loader and Python, whatever the device's libc, PATH or /tmp."""
    env = launch_env(root, workdir)
    exports = " ".join(f"{k}={q(v)}" for k, v in env.items())
    return (f"mkdir -p {q(env['TMPDIR'])} && export {exports} && exec "
            + " ".join(q(w) for w in launch_words(root, bundle.abi, script)))


def clean(adb: Adb, serial: str, base_dir: str) -> str:
    """Remove every runtime bundle (and half-pushed parts) from the device; what was there."""
    home = runtime_dir(base_dir)
    listing = _sh(adb, serial, f"ls {q(home)} 2>/dev/null; rm -rf {q(home)}", "remove the bundle")
    return listing.strip()


def _parts(bundle: Bundle) -> list[Path]:
    """The packed bundle cut in ``PART``-byte files beside it (made once)."""
    folder = Path(bundle.tarball).parent / "parts"
    count = -(-bundle.size // PART)
    done = folder / ".done"
    if not done.exists():
        folder.mkdir(exist_ok=True)
        with open(bundle.tarball, "rb") as src:
            for i in range(count):
                (folder / f"{i:03d}").write_bytes(src.read(PART))
        done.write_text(str(count))
    return [folder / f"{i:03d}" for i in range(count)]


def _sizes(listing: str) -> dict[str, int]:
    sizes = {}
    for line in listing.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].isdigit() and words[1] != "total":
            sizes[posixpath.basename(words[1])] = int(words[0])
    return sizes


def _check_space(adb: Adb, serial: str, base_dir: str, bundle: Bundle, to_push: int) -> None:
    """Enough room for the parts still to push plus the unpacked bundle, or one line."""
    out = _sh(adb, serial, f"mkdir -p {q(base_dir)} && df -k {q(base_dir)}", "df")
    words = out.strip().splitlines()[-1].split() if out.strip() else []
    try:
        free = int(words[-3]) * 1024  # ... Available Use% Mounted-on
    except (IndexError, ValueError):
        return  # a df we cannot read: the push itself will tell
    need = to_push + int(bundle.manifest["unpacked_bytes"] * 1.05)
    if free < need:
        raise BundleError(
            f"device {serial}: no space left for the runtime bundle: it needs {need / 1e6:.0f} MB "
            f"in {base_dir}, {free / 1e6:.0f} MB are free there (free some space, or choose "
            "another folder with --device-dir)")


def _check_exec(adb: Adb, serial: str, home: str, bundle: Bundle) -> None:
    """Run the bundle's loader alone (``--version``): a noexec folder fails here, cheaply."""
    probe = posixpath.join(home, f"probe-{bundle.abi.loader}")
    local = _loader_file(bundle)
    try:
        adb.push(serial, str(local), probe)
    except AdbError as exc:
        raise _push_error(serial, home, exc) from None
    proc = adb.run(["shell", f"{q(probe)} --version; echo status=$?; rm -f {q(probe)}"],
                   serial=serial, step="run the loader", check=False)
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    status = re.search(r"status=(\d+)", text)
    if status and status.group(1) == "0":
        return
    if "ermission denied" in text or (status and status.group(1) == "126"):
        raise BundleError(f"device {serial}: {posixpath.dirname(home)} is mounted noexec: "
                          "programs cannot run there; choose an executable folder with "
                          "--device-dir (on Android: under /data/local/tmp)")
    last = [line for line in text.splitlines() if line.strip() and "status=" not in line]
    raise BundleError(f"device {serial}: the {bundle.abi.name} bundle's loader does not run "
                      f"there: {last[-1] if last else text.strip()}")


def _loader_file(bundle: Bundle) -> Path:
    local = Path(bundle.tarball).parent / bundle.abi.loader
    if not local.exists():
        with tarfile.open(bundle.tarball) as tar:
            member = tar.getmember(f"lib/{bundle.abi.triplet}/{bundle.abi.loader}")
            local.write_bytes(tar.extractfile(member).read())
        local.chmod(0o755)
    return local


def _push_parts(adb: Adb, serial: str, parts_dir: str, bundle: Bundle, missing: list[Path],
                say: Say) -> None:
    total, done, start = sum(p.stat().st_size for p in missing), 0, time.monotonic()
    say(f"device {serial}: pushing runtime {bundle.name} ({total / 1e6:.0f} MB in "
        f"{len(missing)} parts)")
    for i, part in enumerate(missing, 1):
        try:
            adb.push(serial, str(part), posixpath.join(parts_dir, part.name), timeout=600)
        except AdbError as exc:
            raise _push_error(serial, parts_dir, exc) from None
        done += part.stat().st_size
        rate = done / 1e6 / max(time.monotonic() - start, 1e-3)
        say(f"device {serial}: pushed {done / 1e6:.0f}/{total / 1e6:.0f} MB "
            f"({i}/{len(missing)} parts, {rate:.0f} MB/s)")


def _push_error(serial: str, where: str, exc: AdbError) -> BundleError:
    if "No space left" in exc.adb_message or "ENOSPC" in exc.adb_message:
        return BundleError(f"device {serial}: no space left on the device while pushing the "
                           f"runtime bundle to {where} (free some space, or choose another "
                           "folder with --device-dir); the next run resumes the push")
    return BundleError(f"device {serial}: pushing the runtime bundle failed: {exc.adb_message}"
                       "; the next run resumes the push")


def _verify(adb: Adb, serial: str, parts_dir: str, bundle: Bundle) -> None:
    want = _tarball_sha256(bundle)
    out = adb.run(["shell", f"cat {q(parts_dir)}/* | sha256sum"], serial=serial, step="sha256sum",
                  timeout=300, check=False).stdout.decode("utf-8", "replace")
    got = out.split()[:1]
    if not (got and re.fullmatch(r"[0-9a-f]{64}", got[0])):
        return  # an old toybox without sha256sum: the parts' sizes were checked
    if got != [want]:
        _sh(adb, serial, f"rm -rf {q(parts_dir)}", "remove corrupt parts")
        raise BundleError(f"device {serial}: the pushed runtime bundle is corrupt (sha256 "
                          f"{got[0][:16]}... instead of {want[:16]}...); removed, the next run "
                          "pushes it again")


def _tarball_sha256(bundle: Bundle) -> str:
    cached = Path(bundle.tarball).with_suffix(".sha256")
    if not cached.exists():
        digest = hashlib.sha256()
        with open(bundle.tarball, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        cached.write_text(digest.hexdigest())
    return cached.read_text().strip()


def _unpack(adb: Adb, serial: str, home: str, root: str, parts_dir: str, bundle: Bundle) -> None:
    partial = root + ".partial"
    script = (f"rm -rf {q(partial)} && mkdir -p {q(partial)} && "
              f"cat {q(parts_dir)}/* | (cd {q(partial)} && tar -xzf -) && "
              f"rm -rf {q(root)} && mv {q(partial)} {q(root)} && "
              f"echo {bundle.hash} > {q(root)}/{MARKER} && rm -rf {q(parts_dir)} && "
              f"for old in {q(home)}/*; do [ \"$old\" = {q(root)} ] || rm -rf \"$old\"; done")
    proc = adb.run(["shell", script], serial=serial, step="unpack the runtime bundle",
                   check=False, timeout=600)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        _sh(adb, serial, f"rm -rf {q(partial)}", "clean up")
        if "No space" in text:
            raise BundleError(f"device {serial}: no space left on the device while unpacking "
                              f"the runtime bundle in {home} (free some space, or choose another "
                              "folder with --device-dir)")
        last = text.splitlines()[-1] if text else f"status {proc.returncode}"
        raise BundleError(f"device {serial}: unpacking the runtime bundle failed: {last}")


def _sh(adb: Adb, serial: str, script: str, step: str) -> str:
    return adb.run(["shell", script], serial=serial, step=step, timeout=120).stdout.decode(
        "utf-8", "replace")


def _safe(serial: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", serial)


q = shlex.quote
