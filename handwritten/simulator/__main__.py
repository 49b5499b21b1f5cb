"""`python -m ibkr_sdk.simulator` / `ibkr-sdk-simulator`: run the gateway simulator in the foreground.

It serves HTTPS by default, as the real gateway does, so a client with its default URL
(`https://127.0.0.1:5000/v1/api/`) reaches it; `--http` serves plain HTTP.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._server import Simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibkr-sdk-simulator",
        description="Serve a simulated IBKR Client Portal Gateway on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=5000, help="TCP port on 127.0.0.1 (0: any free port; default 5000)")
    parser.add_argument(
        "--unauthenticated",
        action="store_true",
        help="start without a brokerage session (/iserver answers 'no bridge' until ssodh/init)",
    )
    parser.add_argument(
        "--accounts",
        default=None,
        help="comma-separated account ids; the first is selected (default DU1234567; with --advisor "
        "DF1234560,DU1234567,DU1234568)",
    )
    parser.add_argument(
        "--advisor",
        action="store_true",
        help="act as a Financial Advisor's login: the first account is the advisor's, the others its sub-accounts, "
        "and the allocation and model portfolio endpoints answer (otherwise 400, as for a single account)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--pacing", action="store_true", help="enforce IBKR's pacing limits (429 beyond them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of prices and ids (default 0)")
    scheme = parser.add_mutually_exclusive_group()
    scheme.add_argument(
        "--https",
        dest="https",
        action="store_true",
        default=True,
        help="serve HTTPS with the simulator's self-signed certificate, as the gateway does (the default)",
    )
    scheme.add_argument(
        "--http",
        dest="https",
        action="store_false",
        help="serve plain HTTP instead (clients then need an http:// URL)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log simulator errors to stderr")
    return parser


def _simulator(args: argparse.Namespace) -> Simulator:
    """The simulator the options describe (not started)."""
    from . import Simulator  # imported here so that --help stays fast

    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()] if args.accounts is not None else None
    return Simulator(
        port=args.port,
        authenticated=not args.unauthenticated,
        accounts=accounts,
        advisor=args.advisor,
        latency=args.latency,
        pacing=args.pacing,
        seed=args.seed,
        https=args.https,
    )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        sim = _simulator(args).start()
    except (OSError, ValueError) as exc:
        raise SystemExit(f"ibkr-sdk-simulator: cannot start: {exc}") from None
    role = "advisor and sub-accounts" if args.advisor else "accounts"
    print(f"IBKR gateway simulator serving {sim.url} ({role}: {', '.join(sim.accounts)}); Ctrl-C stops it.", flush=True)
    if args.https:
        # The client accepts a loopback gateway's self-signed certificate by default; cacert verifies it instead.
        print(f"self-signed certificate (give it as cacert to verify): {sim.cacert}", flush=True)
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("simulator stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
