"""What the examples share: their command line and, without `--url`, an embedded gateway simulator.

Every example is a short program for one task. Run as it is, it starts the simulator in its own process on a free
loopback port and works against it, offline. Given `--url` (and `--account`), it talks to that gateway instead:

    python examples/basics.py
    python examples/basics.py --url https://localhost:5000/v1/api/ --account DU1234567

Examples that place orders say so; against a real gateway they need `--account` and should be pointed at a paper
account. Nothing here reads the IBKR_SDK_* environment variables, so an example never trades by accident.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ibkr_sdk import IbkrClient

# Against the simulator, pacing periods (e.g. live orders once per 5 s) are scaled down on both sides, so the
# examples stay fast and still show that the client paces; against IBKR the real periods apply.
SIMULATOR_PACING_SCALE = 0.02


@dataclass
class Session:
    """One run of an example: the client, and the simulator when there is one."""

    client: IbkrClient
    account: str
    url: str
    cacert: str | bool | None
    args: argparse.Namespace
    sim: Any = None  # ibkr_sdk.simulator.Simulator, when offline
    _clients: list[IbkrClient] = field(default_factory=list, repr=False)

    @property
    def offline(self) -> bool:
        return self.sim is not None

    def new_client(self, **options: Any) -> IbkrClient:
        """Another client on the same gateway and account (closed when the example ends)."""
        settings: dict[str, Any] = {"url": self.url, "account_id": self.account, "cacert": self.cacert}
        if self.offline:
            settings["pacing_time_scale"] = SIMULATOR_PACING_SCALE
        settings.update(options)
        client = IbkrClient(**settings)
        self._clients.append(client)
        return client


def step(title: str) -> None:
    print(f"\n== {title}")


def parser(doc: str | None) -> argparse.ArgumentParser:
    lines = (doc or "").strip().splitlines()
    parser = argparse.ArgumentParser(
        description=lines[0] if lines else None,
        epilog="Without --url the example runs against an embedded gateway simulator.",
        allow_abbrev=False,
    )
    parser.add_argument("--url", help="base URL of a gateway, e.g. https://localhost:5000/v1/api/")
    parser.add_argument("--account", help="account id to use (required with --url for examples that place orders)")
    parser.add_argument("--cacert", help="CA bundle of the gateway (default: a loopback gateway's own certificate)")
    return parser


@contextlib.contextmanager
def session(args: argparse.Namespace, places_orders: bool, simulator: dict[str, Any]) -> Iterator[Session]:
    if args.url:
        if places_orders and not args.account:
            sys.exit("this example places orders: pass --account (a paper account) with --url")
        client = IbkrClient(url=args.url, account_id=args.account, cacert=args.cacert)
        s = Session(client, args.account or "", args.url, args.cacert, args)
        try:
            yield s
        finally:
            for extra in s._clients:
                extra.close()
            client.close()
        return
    from ibkr_sdk.simulator import Simulator

    options: dict[str, Any] = {"pacing": True, "pacing_time_scale": SIMULATOR_PACING_SCALE}
    if args.account:
        options["accounts"] = [args.account]
    options.update(simulator)
    with Simulator(**options) as sim:
        print(f"(offline: embedded gateway simulator at {sim.url})")
        account = args.account or sim.accounts[0]
        client = IbkrClient(url=sim.url, account_id=account, pacing_time_scale=SIMULATOR_PACING_SCALE)
        s = Session(client, account, sim.url, None, args, sim)
        try:
            yield s
        finally:
            for extra in s._clients:
                extra.close()
            client.close()


def run(
    main: Callable[[Session], None],
    doc: str | None,
    *,
    places_orders: bool = False,
    simulator: dict[str, Any] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse the command line, connect (or start the simulator), run `main`, and exit non-zero on an error."""
    p = parser(doc)
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args()
    with session(args, places_orders, simulator or {}) as s:
        main(s)
