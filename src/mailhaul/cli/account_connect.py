"""`mailhaul account connect ID`: sign an OAuth2 account in with the device flow (RFC 8628)
— the code to approve at the provider is printed, the tokens kept when approved."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json

if TYPE_CHECKING:
    from mailhaul.adapters.oauth_endpoint import DeviceAuthorization


@click.command("connect")
@click.argument("account_id", type=int, help="The account's id.")
@click.option(
    "--json",
    "json_out",
    is_flag=True,
    help="Print the code to approve as a JSON line first, the result as JSON when done.",
)
@click.pass_context
def connect(ctx: click.Context, account_id: int, json_out: bool) -> None:
    """Sign an OAuth2 account in: approve the printed code at the provider; waits."""

    def show(device: DeviceAuthorization) -> None:
        if json_out:
            print(json.dumps(device.public(time.time())), flush=True)
            return
        print(f"To sign in, open {device.verification_uri} and enter the code {device.user_code}")
        if device.verification_uri_complete:
            print(f"(or open {device.verification_uri_complete})")
        sys.stdout.flush()
        sys.stderr.write("waiting for the approval… (Ctrl-C gives up)\n")

    with errors_to_exit():
        app = state(ctx).app()
        account = app.accounts.get(account_id)
        app.sign_in.connect_device(account, show)
    if json_out:
        print_json({"account_id": account_id, "sign_in": "connected"})
    else:
        print(f"account {account_id}: connected; it is fetched at once")
