"""``python -m conformance.device.emulator``: run a loopback device until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys

from conformance.device.emulator.server import LoopbackServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.device.emulator",
        description="A loopback Android device that the real adb client can connect to.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--sandbox", required=True, help="host folder that is /data/local/tmp")
    parser.add_argument("--serial-name", default=None,
                        help="ro.product.name in the banner (default: conformance_loopback)")
    parser.add_argument("--python", default=None,
                        help="interpreter behind the device's python3 (default: this one)")
    args = parser.parse_args(argv)
    props = {"ro.product.name": args.serial_name} if args.serial_name else None
    try:
        server = LoopbackServer(args.sandbox, host=args.host, port=args.port, props=props,
                                python=args.python)
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"loopback device on {args.host}:{server.port}, /data/local/tmp = "
          f"{server.sandbox.root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
