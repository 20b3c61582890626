"""Shared CLI state: settings from flags, exit codes, error reporting.

Cheap to import: the settings and the application are loaded when a command asks for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mailhaul.domain.errors import (
    AccountBusy,
    ConfigError,
    DatabaseUnusable,
    MailhaulError,
    NotFound,
)

if TYPE_CHECKING:
    from mailhaul.bootstrap import App
    from mailhaul.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1  # a run (or part of the work) failed
EXIT_USAGE = 2  # bad command line, settings or input; a database mailhaul cannot use
EXIT_NOT_FOUND = 3
EXIT_BUSY = 4  # the account is being polled by another process
EXIT_BLOCKED = 5  # the account is disabled or paused: nothing was polled


@dataclass
class CliState:
    """What the top-level options said."""

    home: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False
    _app: App | None = None

    def settings(self) -> Settings:
        """Settings from flags > environment > mailhaul.toml > defaults (without the
        database's: ``app()`` lays those on top)."""
        from mailhaul.settings import load_settings

        return load_settings(self.home, self.overrides)

    def app(self, stored_settings: bool = True) -> App:
        """The wired application (requires an initialised home), with the settings an admin
        stored in the database laid over the others unless ``stored_settings`` is false
        (schema commands, and repairing a stored value)."""
        if self._app is None:
            from mailhaul.bootstrap import App

            settings = self.settings()
            if not settings.key_file.exists():
                raise ConfigError(
                    f"{settings.home} is not set up yet: run `mailhaul init` first "
                    "(or set MAILHAUL_HOME / --home to the right place)"
                )
            app = App(settings)
            app.db.check_not_newer()  # an older mailhaul must not write a newer schema
            self._app = app
            if stored_settings:
                app.refresh_settings()
        return self._app


def state(ctx: click.Context) -> CliState:
    """The CLI state of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error to stderr and exit with ``code``."""
    sys.stderr.write(f"mailhaul: error: {message}\n")
    raise click.exceptions.Exit(code)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn mailhaul errors into a plain message and a script-friendly exit code."""
    try:
        yield
    except NotFound as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except AccountBusy as exc:
        fail(str(exc), EXIT_BUSY)
    except (ConfigError, DatabaseUnusable) as exc:
        fail(str(exc), EXIT_USAGE)
    except MailhaulError as exc:
        from mailhaul.domain.access import Forbidden

        fail(str(exc), EXIT_USAGE if isinstance(exc, Forbidden) else EXIT_FAILED)


def read_password_stdin() -> str:
    """The password from standard input: its first line, without the line break."""
    if sys.stdin is None:
        fail("--password-stdin needs the password on standard input")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Password: ")
    data = sys.stdin.readline()
    return data.removesuffix("\n").removesuffix("\r")
