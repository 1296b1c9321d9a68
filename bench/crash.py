"""The crash test's scenario with its figures: N members escalate at once, SIGKILL, restart.

    python bench/crash.py [--members 1000] [--database-url postgresql+psycopg://…]

It runs ``tests/e2e/test_crash.py`` (which asserts that nothing is lost or doubled) and prints
the table the test prints. With ``--database-url`` the whole scenario runs on that database
(PostgreSQL: the schema is dropped and made again).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    env = {**os.environ, "CRASH_MEMBERS": str(args.members)}
    if args.database_url:
        env["TEST_SUITE_DATABASE_URL"] = args.database_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "e2e" / "test_crash.py"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    print("\n".join(table) if table else result.stdout[-3000:])  # noqa: T201
    print("passed" if result.returncode == 0 else f"FAILED (pytest exit {result.returncode})")  # noqa: T201
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
