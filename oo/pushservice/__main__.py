"""`python -m oo.pushservice`: run the local push service until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from oo.pushservice.server import PushService


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oo.pushservice",
        description="A local Web Push service (RFC 8030) over HTTPS for tests and `oo dev`: "
        "checks VAPID (RFC 8292), decrypts payloads (RFC 8291) with simulated browsers' keys and "
        "records them. Control API under /_control/ (see oo/pushservice/server.py).",
    )
    parser.add_argument("--ca-dir", type=Path, required=True,
                        help="folder for the test CA and server certificate (made if missing); "
                        "clients trust CA_DIR/ca.pem")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind (default 0: any free port, printed at start)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"), help="default info")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range 0..65535")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args.host, args.port, args.ca_dir))
    except OSError as err:
        print(f"oo.pushservice: error: cannot serve on {args.host}:{args.port}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    return 0


async def _serve(host: str, port: int, ca_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PushService.running(host, port, ca_dir) as service:
        print(f"oo.pushservice: ready on {service.base_url} (trust {service.ca_file}); "
              "control API under /_control/", flush=True)
        await stop.wait()
    print("oo.pushservice: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
