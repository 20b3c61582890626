"""`mailhaul oauth provider add|list|show|delete`: the OAuth2 clients accounts sign in
through (Google, Microsoft 365, an organisation's own identity provider)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import Group, json_option
from mailhaul.cli.context import errors_to_exit, fail, read_password_stdin, state
from mailhaul.cli.output import details, print_json, print_table, shown_value, table

if TYPE_CHECKING:
    from mailhaul.domain.oauth import OAuthProvider
    from mailhaul.services.oauth_providers import OAuthProviderService

app = Group("oauth", help="Manage the OAuth2 providers accounts sign in through.")
provider = Group("provider", help="Register, list, show and delete OAuth2 providers.")
app.add_command(provider)
name_argument = click.argument(
    "name", help="The provider's name (see `mailhaul oauth provider list`)."
)


def _service(ctx: click.Context) -> OAuthProviderService:
    return state(ctx).app().oauth_providers


@provider.command("add")
@click.argument("name", help="A name for it, used by `account add --oauth-provider NAME`.")
@click.option(
    "--preset",
    type=click.Choice(["google", "microsoft"]),
    help="Google (Gmail, Workspace) or Microsoft (Outlook.com, Microsoft 365).",
)
@click.option("--tenant", default="", help="Microsoft: the tenant name or id (default common).")
@click.option(
    "--grant",
    type=click.Choice(["user", "client-credentials"]),
    default="user",
    show_default=True,
    help="user: each account's owner consents; client-credentials: app-only access "
    "(Microsoft 365 shared and service mailboxes).",
)
@click.option(
    "--issuer", default="", help="An issuer URL whose discovery document names the endpoints."
)
@click.option("--authorize-url", default="", help="The authorization endpoint.")
@click.option("--token-url", default="", help="The token endpoint.")
@click.option("--device-url", default="", help="The device authorization endpoint (RFC 8628).")
@click.option("--revoke-url", default="", help="The revocation endpoint (RFC 7009).")
@click.option("--scope", default="", help="The scopes to ask for, space-separated.")
@click.option("--client-id", required=True, help="The client id the provider gave.")
@click.option(
    "--client-secret-stdin",
    is_flag=True,
    help="Read the client secret from standard input (none: a public client).",
)
@json_option
@click.pass_context
def add(ctx: click.Context, /, name: str, **options: str | bool) -> None:
    """Register an OAuth2 provider: a preset, an issuer, or endpoint URLs."""
    from mailhaul.domain.oauth import Endpoints, Grant, Preset
    from mailhaul.services.oauth_providers import ProviderRequest, provider_dict

    secret = read_password_stdin() if options["client_secret_stdin"] else ""
    if options["client_secret_stdin"] and not secret:
        fail("--client-secret-stdin: standard input held no secret")
    preset = str(options["preset"]) if options["preset"] else None
    request = ProviderRequest(
        name=name,
        client_id=str(options["client_id"]),
        client_secret=secret,
        preset=Preset(preset) if preset else None,
        tenant=str(options["tenant"]),
        grant=Grant(str(options["grant"])),
        issuer=str(options["issuer"]),
        endpoints=Endpoints(
            authorize_url=str(options["authorize_url"]),
            token_url=str(options["token_url"]),
            device_url=str(options["device_url"]),
            revoke_url=str(options["revoke_url"]),
        ),
        scope=str(options["scope"]),
    )
    with errors_to_exit():
        added = _service(ctx).add(request)
    if options["json_out"]:
        print_json(provider_dict(added))
    else:
        print(added.id)


@provider.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, json_out: bool) -> None:
    """List the registered OAuth2 providers."""
    from mailhaul.services.oauth_providers import provider_dict

    with errors_to_exit():
        providers = _service(ctx).list()
    if json_out:
        print_json([provider_dict(p) for p in providers])
        return
    rows = (
        (str(p.id), p.name, _kind(p), str(p.grant), p.client_id, "set" if p.has_secret else "-")
        for p in providers
    )
    print_table(table(("id", "name", "kind", "grant", "client id", "secret"), rows))


@provider.command("show")
@name_argument
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, json_out: bool) -> None:
    """Show one OAuth2 provider (the client secret only as set or not)."""
    from mailhaul.services.oauth_providers import provider_dict

    with errors_to_exit():
        found = _service(ctx).get(name)
    found_dict = provider_dict(found)
    if json_out:
        print_json(found_dict)
        return
    print_table(details([(key, shown_value(key, value)) for key, value in found_dict.items()]))


@provider.command("delete")
@name_argument
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete an OAuth2 provider no account signs in through."""
    with errors_to_exit():
        _service(ctx).delete(name)
    print(f"deleted OAuth provider {name}")


def _kind(provider: OAuthProvider) -> str:
    if provider.preset is not None:
        return f"{provider.preset} ({provider.tenant})" if provider.tenant else str(provider.preset)
    return "issuer" if provider.issuer else "endpoints"
