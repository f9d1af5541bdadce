"""``conformance device``: the runtime bundle on an ADB device (push it ahead of a run, remove it).

    conformance device push SERIAL     # build (once) and push the bundle for the device's ABI
    conformance device clean SERIAL    # remove every runtime bundle from the device
"""

from __future__ import annotations

import sys

DEFAULT_DIR = "/data/local/tmp/conformance"


def register(subparsers) -> None:
    parser = subparsers.add_parser("device", help="push or remove the runtime bundle on an ADB device")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, text in (("push", "build (once, cached) and push the runtime bundle for the "
                                "device's ABI; nothing is pushed when the device holds it"),
                       ("clean", "remove the runtime bundle (and half-pushed parts) from the device")):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("serial", metavar="SERIAL", help="the device (HOST:PORT is connected)")
        sub.add_argument("--device-dir", default=DEFAULT_DIR, metavar="DIR",
                         help=f"work folder on the device. Default: {DEFAULT_DIR}")
        sub.add_argument("--adb", default=None, metavar="PATH", help="the adb client. Default: adb on PATH")
        sub.set_defaults(func=run)


def run(args) -> int:
    from conformance.device import bundle, install
    from conformance.device.adb import Adb, AdbError
    from conformance.device.packages import FetchError

    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        adb = Adb(args.adb)
        adb.ensure_device(args.serial)
        if args.verb == "clean":
            removed = install.clean(adb, args.serial, args.device_dir)
            print(f"device {args.serial}: removed {removed.split() or 'nothing'} from "
                  f"{install.runtime_dir(args.device_dir)}")
            return 0
        found = bundle.ensure(adb.getprop(args.serial, "ro.product.cpu.abi"), say=say)
        root = install.install(adb, args.serial, args.device_dir, found, say)
        print(f"device {args.serial}: runtime {found.name} in {root}")
        return 0
    except (AdbError, FetchError) as exc:
        print(f"conformance device {args.verb}: {exc}", file=sys.stderr)
        return 1
