from __future__ import annotations

import subprocess
import sys

import ibkr_sdk


def test_public_names() -> None:
    assert {"IbkrClient", "Result", "ExternalBrokerError", "IbkrError"} <= set(ibkr_sdk.__all__)
    for name in ibkr_sdk.__all__:
        assert getattr(ibkr_sdk, name) is not None


def test_import_stays_light() -> None:
    code = (
        "import sys, ibkr_sdk; "
        "heavy = ('jinja2', 'yaml', 'datamodel_code_generator', 'jsonschema', 'codegen'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == ""


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("ibkr_sdk").joinpath("py.typed").is_file()
