"""`/settings` (admins): the settings an admin may change while the service runs, each with
where its value comes from; changes are stored in the database (over mailhaul.toml, under the
environment) and running services apply them within seconds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from mailhaul.delivery_methods import EDITABLE_METHODS
from mailhaul.services.settings_admin import SettingsOverview
from mailhaul.settings_keys import EDITABLE_DOMAIN_KEYS
from mailhaul.web.api.v1.deps import AdminOnly, Mailhaul
from mailhaul.web.api.v1.errors import FORBIDDEN, INVALID, MALFORMED, responses

router = APIRouter(tags=["settings"])

Scalar = int | float | bool | str
Source = Literal["default", "mailhaul.toml", "database", "environment"]


class SettingOut(BaseModel):
    """One editable setting: its value in effect and where that comes from."""

    key: str = Field(description="e.g. `poll.interval`.")
    value: Scalar
    source: Source
    editable: bool = Field(description="False when the environment sets it.")
    updated_at: float | None = Field(description="When an admin stored it (source database).")
    updated_by: str | None


class DomainDeliveryOut(BaseModel):
    """How one domain's mail is delivered."""

    domain: str
    values: dict[str, Scalar] = Field(description="In effect: method, lmtp, smtp, ….")
    sources: dict[str, Literal["default", "mailhaul.toml", "database"]]
    stored: dict[str, Scalar] = Field(description="What the database sets for the domain.")
    in_file: bool = Field(description="mailhaul.toml has a table for the domain.")


class SettingsOut(BaseModel):
    """The editable settings and the per-domain delivery."""

    settings: list[SettingOut]
    delivery_domains: list[DomainDeliveryOut]
    problem: str | None = Field(description="Why the stored values are not in effect, if so.")


PATCH_EXAMPLE = {
    "poll.interval": 600,
    "runs.keep_days": None,
    "delivery.domains": {"example.org": {"method": "lmtp", "lmtp": "127.0.0.1:24"}},
}
# "method maildir|lmtp|smtp, lmtp, smtp, maildir_path, …"
DOMAIN_KEYS_TEXT = ", ".join(
    f"method {'|'.join(EDITABLE_METHODS)}" if key == "method" else key
    for key in EDITABLE_DOMAIN_KEYS
)
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=(
            "Setting → new value, or null to go back to mailhaul.toml's value or the "
            "default. `delivery.domains` takes `{domain: {key: value} or null}`: a table "
            f"replaces what the database sets for that domain (keys: {DOMAIN_KEYS_TEXT}), null "
            "removes it."
        ),
        examples=[PATCH_EXAMPLE],
    ),
]


def _out(overview: SettingsOverview) -> SettingsOut:
    return SettingsOut.model_validate(overview.as_dict())


@router.get("/settings", responses=responses(FORBIDDEN))
def get_settings(actor: AdminOnly, app: Mailhaul) -> SettingsOut:
    """The editable settings with their sources, and the per-domain delivery."""
    return _out(app.settings_admin.overview(actor))


@router.patch("/settings", responses=responses(FORBIDDEN, INVALID, MALFORMED))
def change_settings(body: PatchBody, actor: AdminOnly, app: Mailhaul) -> SettingsOut:
    """Change some settings; nothing is stored unless every change is valid.

    422 names the first bad setting in `error.field` (a setting the environment sets is
    refused too: the environment would win).
    """
    return _out(app.settings_admin.change(actor, body))
