"""`mailhaul` run as a user types it: a subprocess with a home of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAILHAUL = [sys.executable, "-m", "mailhaul"]


class Cli:
    """Runs `mailhaul` with ``home`` as MAILHAUL_HOME; the calling shell's MAILHAUL_*
    settings are left out, ``env`` adds settings of the test's own."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
        self.env = {**inherited, "MAILHAUL_HOME": str(home), "COLUMNS": "200", **env}

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MAILHAUL, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        """The output of a command that must succeed."""
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    @property
    def database(self) -> Path:
        """The home's SQLite database."""
        return self.home / "mailhaul.db"
