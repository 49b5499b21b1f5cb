"""The main workflow, end to end. Runs against the embedded gateway simulator once it lands (issue 3);
until then it checks the installation and shows the catalogue."""

from __future__ import annotations

import ibkr_sdk
from ibkr_sdk._endpoint_table import ENDPOINTS


def main() -> None:
    print(f"ibkr_sdk {ibkr_sdk.__version__}: {len(ENDPOINTS)} endpoints in the catalogue")
    print("The offline gateway simulator that this demo drives is not part of this version yet.")


if __name__ == "__main__":
    main()
