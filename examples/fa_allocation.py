"""Financial Advisor allocation: sub-accounts, allocation groups and presets.

    python examples/fa_allocation.py
    python examples/fa_allocation.py --url https://localhost:5000/v1/api/ --account DF1234560

For an advisor (FA) login: which sub-accounts orders can be allocated to, groups that split an order among them
(by net liquidation, equally, by percent, by shares ...), and the presets that apply when an order names no
method. The example creates two groups of its own, changes one and deletes both again. Offline it runs against
a simulated advisor with two sub-accounts.
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import ExternalBrokerError


def main(s: Session) -> None:
    client = s.client
    suffix = time.strftime("%H%M%S")
    core, split = f"Core{suffix}", f"Split{suffix}"

    step("Sub-accounts an order can be allocated to")
    subs = client.allocation_accounts().data["accounts"]
    for sub in subs:
        figures = {d["key"]: d["value"] for d in sub.get("data", [])}
        print(f"  {sub['name']}  net liquidation {float(figures.get('NetLiquidation', 0)):>14,.2f}")
    names = [sub["name"] for sub in subs]
    if len(names) < 2:
        print("  (fewer than two sub-accounts: nothing to allocate between)")
        return

    step("Two groups: by net liquidation, and 70/30 by percent")
    client.create_allocation_group(core, [{"name": n} for n in names])  # method N: net liquidation
    percent = [{"name": names[0], "amount": 70}, {"name": names[1], "amount": 30}]
    client.create_allocation_group(split, percent, default_method="P")
    for group in client.allocation_groups().data["data"]:
        print(f"  {group['name']:14s} method {group['allocation_method']}  members {group['size']}")
    print(f"  {split}: {client.allocation_group(split).data['accounts']}")

    step("Change a group: the whole definition is replaced")
    client.modify_allocation_group(split, [{"name": names[0], "amount": 50}, {"name": names[1], "amount": 50}], "P")
    print(f"  {split}: {client.allocation_group(split).data['accounts']}")

    step("A definition IBKR would refuse is refused, naming why")
    try:
        client.create_allocation_group(f"Bad{suffix}", [{"name": names[0], "amount": 60}], default_method="P")
    except ExternalBrokerError as exc:
        print(f"  {type(exc).__name__}: {exc}")

    step("Presets (what applies when an order names no method)")
    for key, value in client.allocation_presets().data.items():
        print(f"  {key:32s} {value}")

    step("Clean up")
    for name in (core, split):
        client.delete_allocation_group(name)
    left = [g["name"] for g in client.allocation_groups().data["data"]]
    print(f"  groups left: {left or 'none'}")


if __name__ == "__main__":
    run(main, __doc__, simulator={"advisor": True})
