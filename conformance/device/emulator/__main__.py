"""``python -m conformance.device.emulator``: run a loopback device until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from conformance.device.emulator import arm, bare
from conformance.device.emulator.server import LoopbackServer

ABIS = ("x86_64", "arm64-v8a")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.device.emulator",
        description="A loopback Android device that the real adb client can connect to.")
    parser.add_argument("--port", type=int, help="TCP port to listen on (required)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--sandbox", help="host folder that is /data/local/tmp (required)")
    parser.add_argument("--serial-name", default=None,
                        help="ro.product.name in the banner (default: conformance_loopback)")
    parser.add_argument("--abi", choices=ABIS, default="x86_64",
                        help="x86_64 (default): programs run natively; arm64-v8a: under "
                             f"{arm.QEMU} -cpu {arm.CPU}")
    parser.add_argument("--preinstalled", action="store_true",
                        help="a friendly device (Termux, a Linux board): commands run on the "
                             "host in the sandbox and python3 with numpy and onnxruntime is on "
                             "PATH (arm64-v8a: from an aarch64 root under QEMU). Default: a "
                             "device as bare as a stock phone (busybox sh, getprop, no python3)")
    parser.add_argument("--noexec", action="store_true",
                        help="bare device: /data/local/tmp is mounted noexec")
    parser.add_argument("--quota-mb", type=int, default=None, metavar="MB",
                        help="bare device: /data/local/tmp holds at most MB megabytes")
    parser.add_argument("--python", default=None,
                        help="--preinstalled x86_64: interpreter behind python3 (default: this "
                             "one)")
    parser.add_argument("--arm-root", type=Path, default=None,
                        help=f"--preinstalled arm64-v8a: the aarch64 root, built there on first "
                             f"use (default: {arm.default_root()})")
    parser.add_argument("--prepare-only", action="store_true",
                        help="build the aarch64 root (if needed) and exit")
    args = parser.parse_args(argv)
    if args.prepare_only:
        args.abi, args.preinstalled = "arm64-v8a", True
    elif args.port is None or args.sandbox is None:
        parser.error("--port and --sandbox are required (unless --prepare-only)")
    if args.python and (args.abi != "x86_64" or not args.preinstalled):
        parser.error("--python applies to --preinstalled --abi x86_64 only")
    if (args.noexec or args.quota_mb) and args.preinstalled:
        parser.error("--noexec and --quota-mb apply to the bare device (not --preinstalled)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    arm_root = None
    if not args.preinstalled:
        try:
            if args.abi == "arm64-v8a":
                arm.find_qemu()
            bare.find_busybox()
            bare.reexec_in_namespace(sys.argv[1:] if argv is None else argv)
        except (arm.ArmRootError, bare.BareDeviceError) as exc:
            print(f"emulator: {exc}", file=sys.stderr)
            return 3
    elif args.abi == "arm64-v8a":
        try:
            arm_root = arm.ensure_root(args.arm_root)
        except arm.ArmRootError as exc:
            print(f"emulator: {exc}", file=sys.stderr)
            return 3
        if args.prepare_only:
            print(f"aarch64 root ready: {arm_root}", flush=True)
            return 0
    props = {"ro.product.name": args.serial_name} if args.serial_name else None
    try:
        server = LoopbackServer(args.sandbox, host=args.host, port=args.port, props=props,
                                python=args.python, arm_root=arm_root,
                                bare_abi=None if args.preinstalled else args.abi,
                                noexec=args.noexec, quota_mb=args.quota_mb)
    except bare.BareDeviceError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    kind = "preinstalled" if args.preinstalled else "bare"
    print(f"loopback device ({server.props['ro.product.cpu.abi']}, {kind}) on {args.host}:{server.port}, "
          f"/data/local/tmp = {server.sandbox.root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
