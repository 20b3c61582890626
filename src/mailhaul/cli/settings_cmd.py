"""`mailhaul settings show|set|unset`: the settings an admin may change while the service runs
(stored in the database; running `serve`/`worker` processes pick a change up within seconds)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from mailhaul.cli.base import Group, json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import console, print_json, table
from mailhaul.settings_keys import EDITABLE_DOMAIN_KEYS

if TYPE_CHECKING:
    from mailhaul.services.settings_admin import SettingsAdmin

app = Group(
    "settings",
    help="Show and change the settings an admin may edit (also in the web UI).",
)

key_argument = click.argument(
    "key",
    help="poll.interval, … (see `settings show`), delivery.domains.DOMAIN or "
    f"delivery.domains.DOMAIN.KEY ({', '.join(EDITABLE_DOMAIN_KEYS)}).",
)
value_argument = click.argument(
    "value",
    help="The value: 600, true, 110,995, 127.0.0.1:24 (a value quoted as in mailhaul.toml, "
    "'\"110,995\"', is taken too); for delivery.domains.DOMAIN a JSON table, e.g. "
    '\'{"method": "lmtp", "lmtp": "127.0.0.1:24"}\'.',
)


def _plain(value: str) -> str:
    """``value`` without TOML string quotes (``"110,995"`` → ``110,995``); else as typed."""
    import tomllib

    try:
        parsed = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        return value
    return parsed if isinstance(parsed, str) else value


def _shown(key: str, value: Any) -> str:
    """A setting's value as `settings set` takes it; a size with its human units too."""
    text = json.dumps(value)
    if key.endswith("max_size") and isinstance(value, int):
        from mailhaul.domain.units import human_bytes

        return f"{text} ({human_bytes(value)})"
    return text


def _admin(ctx: click.Context) -> SettingsAdmin:
    # Without the stored settings applied: `unset` must work when one no longer fits.
    return state(ctx).app(stored_settings=False).settings_admin


def _domain_key(key: str) -> tuple[str, str | None] | None:
    """``delivery.domains.example.org[.lmtp]`` → (``example.org``, ``lmtp`` or None)."""
    rest = key.removeprefix("delivery.domains.")
    if rest == key or not rest:
        return None
    domain, _, last = rest.rpartition(".")
    if domain and last in EDITABLE_DOMAIN_KEYS:
        return domain.strip('"'), last
    return rest.strip('"'), None


def _stored_table(admin: SettingsAdmin, domain: str) -> dict[str, Any]:
    from mailhaul.domain.access import Principal

    for item in admin.overview(Principal.system()).domains:
        if item.domain == domain.lower().rstrip("."):
            return dict(item.stored)
    return {}


@app.command()
@json_option
@click.pass_context
def show(ctx: click.Context, json_out: bool) -> None:
    """The editable settings, their values and where each comes from."""
    from mailhaul.delivery_methods import DELIVERY_METHODS
    from mailhaul.domain.access import Principal

    with errors_to_exit():
        overview = _admin(ctx).overview(Principal.system())
    if json_out:
        print_json(overview.as_dict())
        return
    out = console()
    values = ((item.key, _shown(item.key, item.value), item.source) for item in overview.values)
    out.print(table(("setting", "value", "source"), values))
    rows = []
    for domain in overview.domains:
        method = domain.values["method"]
        known = DELIVERY_METHODS.get(method)
        target = str(domain.values.get(known.target_key, "")) if known else ""
        sources = sorted(set(domain.sources.values()) - {"default"}) or ["default"]
        rows.append((domain.domain, method, target, ", ".join(sources)))
    if rows:
        out.print()
        out.print(table(("domain", "method", "target", "source"), rows))
    if overview.problem:
        out.print()
        print(f"warning: {overview.problem}")


@app.command("set")
@key_argument
@value_argument
@click.pass_context
def set_value(ctx: click.Context, key: str, value: str) -> None:
    """Store a setting in the database (above mailhaul.toml; the environment still wins)."""
    from mailhaul.domain.access import Principal
    from mailhaul.domain.errors import ConfigError

    with errors_to_exit():
        admin = _admin(ctx)
        target = _domain_key(key)
        change: dict[str, Any]
        if target is None:
            change = {key: _plain(value)}
        elif target[1] is None:
            try:
                table = json.loads(value)
            except ValueError:
                raise ConfigError(f"{key}: the value must be a JSON table") from None
            change = {"delivery.domains": {target[0]: table}}
        else:
            domain, name = target[0], target[1]
            table = {**_stored_table(admin, domain), name: _plain(value)}
            change = {"delivery.domains": {domain: table}}
        admin.change(Principal.system(), change)
    print(f"{key} saved; running services apply it within seconds")


@app.command()
@key_argument
@click.pass_context
def unset(ctx: click.Context, key: str) -> None:
    """Forget a stored setting: mailhaul.toml's value (or the default) applies again."""
    from mailhaul.domain.access import Principal

    with errors_to_exit():
        admin = _admin(ctx)
        target = _domain_key(key)
        if target is not None and target[1] is not None:
            domain, name = target[0], target[1]
            table = _stored_table(admin, domain)
            removed = table.pop(name, None) is not None
            if removed:
                admin.change(Principal.system(), {"delivery.domains": {domain: table or None}})
        else:
            removed = admin.unset(Principal.system(), key)
    print(f"{key} unset" if removed else f"{key} was not set in the database")
