"""Run every program in examples/ against its embedded simulator (`make examples`; CI runs it).

Each example runs in its own process with a time limit; the output of a failed one is shown. Exits non-zero when
any example fails or runs out of time, and prints how many ran.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def examples() -> list[Path]:
    """The example programs: every examples/*.py that is not a shared helper (`_common.py`)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each example may take (default 120)")
    parser.add_argument("names", nargs="*", help="run only these examples (file names, with or without .py)")
    options = parser.parse_args(argv)
    chosen = examples()
    if options.names:
        wanted = {n.removesuffix(".py") for n in options.names}
        chosen = [p for p in chosen if p.stem in wanted]
    failed: list[str] = []
    started = time.perf_counter()
    for path in chosen:
        began = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=options.timeout,
                stdin=subprocess.DEVNULL,
            )
            ok, output = done.returncode == 0, done.stdout + done.stderr
            verdict = "ok" if ok else f"FAILED (exit {done.returncode})"
        except subprocess.TimeoutExpired as exc:
            ok, verdict = False, f"FAILED (no end after {options.timeout:g} s)"
            output = "".join(x.decode() if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
        print(f"  {path.name:32s} {verdict:28s} {time.perf_counter() - began:6.1f} s", flush=True)
        if not ok:
            failed.append(path.name)
            print("\n".join(f"    | {line}" for line in output.rstrip().splitlines()[-40:]), flush=True)
    total = time.perf_counter() - started
    print(f"examples: {len(chosen)} run, {len(chosen) - len(failed)} passed, {len(failed)} failed ({total:.1f} s)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or not chosen else 0


if __name__ == "__main__":
    sys.exit(main())
