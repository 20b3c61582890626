"""From request bodies to `AccountSpec`s: defaults as `mailhaul account add` has them."""

from __future__ import annotations

from typing import TypeVar

from mailhaul.domain.access import Principal
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.filtering import FilterOptions, spam_action, virus_action
from mailhaul.domain.options import RetrievalOptions, default_port
from mailhaul.domain.validation import FieldError
from mailhaul.settings import Settings
from mailhaul.web.api.v1.account_schemas import AccountFields, AccountPatch

T = TypeVar("T")


def default_owner(actor: Principal) -> str:
    """The owner of an account created without one: the caller's own address."""
    if "@" not in actor.login:
        raise FieldError("owner", "is required (your login is not a mailbox address)")
    return actor.login


def new_password(password: str | None) -> str | None:
    """A password to store, or None to keep the stored one (omitted or empty)."""
    return password or None


def spec_from_fields(fields: AccountFields, owner: str, settings: Settings) -> AccountSpec:
    """Every setting as given; what is omitted takes a new account's default."""
    return AccountSpec(
        owner=fields.owner or owner,
        protocol=fields.protocol,
        host=fields.host,
        port=fields.port or default_port(fields.protocol, fields.security),
        security=fields.security,
        username=fields.username,
        verify_cert=fields.verify_cert,
        ca_file=fields.ca_file or None,
        options=RetrievalOptions(
            keep=fields.keep,
            fetchall=fields.fetchall,
            flush=fields.flush,
            max_size=fields.max_size or settings.max_size,
            folders=tuple(fields.folders),
            rules=fields.folder_rules.domain(),
            delete_after_days=fields.delete_after_days,
            max_messages_per_run=fields.max_messages_per_run,
            max_bytes_per_run=fields.max_bytes_per_run,
            new_only=fields.new_only,
            since=fields.since,
            move_to=fields.move_to,
            push_folders=tuple(fields.push_folders),
        ),
        deliver_to=fields.deliver_to,
        interval=fields.interval or settings.interval,
        active=fields.active,
        filters=FilterOptions(
            fields.antispam or spam_action(settings.filters.antispam),
            fields.antivirus or virus_action(settings.filters.antivirus),
        ),
        push=fields.push,
    )


def patched_spec(previous: AccountSpec, patch: AccountPatch) -> AccountSpec:
    """``previous`` with the settings ``patch`` gives.

    As with `mailhaul account edit`: a port left at its old default follows a change of
    protocol or security; ``ca_file`` given as null or '' removes the CA file.
    """
    protocol = patch.protocol or previous.protocol
    security = patch.security or previous.security
    port = patch.port
    if port is None:
        old_default = default_port(previous.protocol, previous.security)
        changed = (protocol, security) != (previous.protocol, previous.security)
        port = (
            default_port(protocol, security) if changed and previous.port == old_default else None
        )
    options = previous.options
    return AccountSpec(
        owner=_given(patch.owner, previous.owner),
        protocol=protocol,
        host=_given(patch.host, previous.host),
        port=port or previous.port,
        security=security,
        username=_given(patch.username, previous.username),
        verify_cert=_given(patch.verify_cert, previous.verify_cert),
        ca_file=_ca_file(patch, previous),
        options=RetrievalOptions(
            keep=_given(patch.keep, options.keep),
            fetchall=_given(patch.fetchall, options.fetchall),
            flush=_given(patch.flush, options.flush),
            max_size=_given(patch.max_size, options.max_size),
            folders=tuple(patch.folders) if patch.folders is not None else options.folders,
            rules=patch.folder_rules.domain() if patch.folder_rules else options.rules,
            delete_after_days=_set(patch, "delete_after_days", options.delete_after_days),
            max_messages_per_run=_set(patch, "max_messages_per_run", options.max_messages_per_run),
            max_bytes_per_run=_set(patch, "max_bytes_per_run", options.max_bytes_per_run),
            new_only=_given(patch.new_only, options.new_only),
            move_to=_given(patch.move_to, options.move_to),
            since=patch.since if "since" in patch.model_fields_set else options.since,
            push_folders=(
                tuple(patch.push_folders)
                if patch.push_folders is not None
                else options.push_folders
            ),
        ),
        deliver_to=_given(patch.deliver_to, previous.deliver_to),
        interval=_given(patch.interval, previous.interval),
        active=_given(patch.active, previous.active),
        sign_in=previous.sign_in,
        oauth_provider_id=previous.oauth_provider_id,
        filters=FilterOptions(
            _given(patch.antispam, previous.filters.antispam),
            _given(patch.antivirus, previous.filters.antivirus),
        ),
        push=patch.push if "push" in patch.model_fields_set else previous.push,
    )


def _ca_file(patch: AccountPatch, previous: AccountSpec) -> str | None:
    if "ca_file" in patch.model_fields_set:
        return patch.ca_file or None
    return previous.ca_file


def _set(patch: AccountPatch, name: str, previous: int | None) -> int | None:
    """A nullable number of the patch: as given (null removes it), else ``previous``."""
    return getattr(patch, name) if name in patch.model_fields_set else previous


def _given(value: T | None, previous: T) -> T:
    return previous if value is None else value
