"""Click building blocks: groups that import a command's module only when it runs, and
choices of an enum's values.

Kept cheap to import (click and the standard library only): every `mailhaul` invocation
loads it before it knows which command runs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import click

from mailhaul.domain.filtering import SpamAction, VirusAction

json_option = click.option(
    "--json", "json_out", is_flag=True, help="Print JSON for scripts (times in ISO 8601 UTC)."
)
"""``--json`` as every command that has it spells it (its output: ``output.print_json``)."""


class Group(click.Group):
    """A group of commands; without a subcommand it prints its help to stdout and exits 2."""

    group_class = type  # subgroups are Groups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they were added, not sorted


class LazyGroup(Group):
    """A group that imports a command's module only when the command is looked up.

    ``lazy`` maps a command's name to ``("module:attribute", short help)``; the short help
    lists the group's commands without importing them.
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(name for name in self.lazy if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = self.lazy[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy and name not in self.commands:
                # shortened as the command itself would shorten it
                short = click.Command(name, help=self.lazy[name][1]).get_short_help_str(limit)
                rows.append((name, short))
                continue
            command = self.commands[name]
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class EnumChoice(click.Choice[str]):
    """One of an enum's values (matched as typed, not by the members' names), converted to
    the enum's member."""

    def __init__(self, enum_type: type[Enum]) -> None:
        super().__init__([str(member.value) for member in enum_type])
        self.enum_type = enum_type

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.enum_type):
            return value
        return self.enum_type(super().convert(value, param, ctx))


class Size(click.ParamType[int]):
    """A size in bytes, or with a unit as the web form takes it: ``10M``, ``512K``, ``1G``.
    Plain numbers pass through as typed (the services check the range)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            pass
        from mailhaul.domain.validation import FieldError, parse_size

        try:
            return parse_size(text)
        except FieldError as exc:
            self.fail(str(exc), param, ctx)


def filter_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--antispam`` and ``--antivirus`` (default: the ``filter.*`` setting, or unchanged)."""
    spam = click.option(
        "--antispam",
        type=EnumChoice(SpamAction),
        help="off, tag (X-Spam-* headers) or junk (also files spam into a Maildir's Junk "
        "folder). Default: filter.antispam.",
    )
    virus = click.option(
        "--antivirus",
        type=EnumChoice(VirusAction),
        help="off, or quarantine (infected mail kept out of the mailbox). "
        "Default: filter.antivirus.",
    )
    return spam(virus(command))


def option_group(
    name: str, options: Sequence[Callable[[Any], Any]], build: Callable[..., object]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator adding ``options`` to a command and handing their values to it as one
    keyword argument ``name`` = ``build(**values)`` (each option's name is a ``build``
    parameter), so a command with many options keeps a short signature."""

    def probe() -> None:  # only collects the options' parameter names
        return None

    for option in options:
        probe = option(probe)
    names = [param.name for param in getattr(probe, "__click_params__", []) if param.name]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> None:
            values = {key: kwargs.pop(key) for key in names}
            command(*args, **{name: build(**values)}, **kwargs)

        for option in reversed(options):
            run = option(run)
        return run

    return decorate
