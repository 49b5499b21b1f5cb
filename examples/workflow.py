"""The main workflow of a trading program, end to end, through ibkr_sdk.

By default it starts the embedded gateway simulator in this process on a free loopback port, so it runs offline:

    python examples/workflow.py                     # against the simulator (what `make demo` runs)
    python examples/workflow.py --url https://localhost:5000/v1/api/ --account DU1234567   # a real gateway

The steps live in the package (`ibkr_sdk.lib.workflow`, also `ibkr-sdk demo`); read them there. Against a real
gateway this PLACES ORDERS on the account given: use a paper account.
"""

from __future__ import annotations

import sys

from ibkr_sdk.lib.workflow import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="workflow.py"))
