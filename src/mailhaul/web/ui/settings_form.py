"""The settings page: the editable settings as a form (stored in the database, applied by
running services within seconds), per-domain delivery rows (add, edit, remove), and the
settings that stay in mailhaul.toml, read-only. Admins only; every form carries CSRF.

A value submitted unchanged is not stored (it keeps coming from mailhaul.toml or the
default); "reset" forgets the database's value. A setting the environment sets is shown
but not editable, and a change to it is refused beside the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from mailhaul.delivery_methods import EDITABLE_METHODS
from mailhaul.domain.access import Forbidden
from mailhaul.domain.errors import ConfigError
from mailhaul.services.settings_admin import (
    DomainDelivery,
    SettingsAdmin,
    SettingsOverview,
    SettingsRejected,
    SettingValue,
)
from mailhaul.services.users import SessionInfo
from mailhaul.settings_keys import EDITABLE_DOMAIN_KEYS, normalise_domain
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.admin import delivery_view, settings_sections
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import Form, checked, redirect, render, text

router = APIRouter(route_class=PageRoute)
Admin = Annotated[SessionInfo, Depends(page_access(Access.ADMIN))]

LABELS = {
    "poll.interval": ("Default interval (seconds)", "between polls of a new account"),
    "poll.max_size": ("Default size limit (bytes)", "per message, for a new account"),
    "poll.per_host_limit": ("Polls of one source host at once", "per process"),
    "poll.max_backoff": ("Longest wait after failures (seconds)", ""),
    "poll.auth_failures_to_pause": ("Login failures before a pause", "in a row"),
    "runs.keep_days": ("Run history kept (days)", "0 keeps all; each account's last run stays"),
    "push.enabled": (
        "Push new mail (IMAP IDLE)",
        "for accounts that do not say; watched while serve or worker runs",
    ),
    "limits.daily_bytes_per_host": (
        "Daily download limit per account, by source host",
        'e.g. "imap.gmail.com=2500M, *=10G"; an account past it waits (no "*": no limit)',
    ),
    "limits.connections_per_account": (
        "Connections per account, by source host",
        'e.g. "imap.gmail.com=7, *=4"; one is kept for polling, the rest may push',
    ),
    "sources.allow_private": (
        "Non-admins may use private source hosts",
        "loopback, private and link-local addresses",
    ),
    "sources.allowed_ports": ("Source ports non-admins may use", 'e.g. "110,143,993,995"'),
    "filter.rspamd": (
        "rspamd",
        'its normal worker, e.g. "http://127.0.0.1:11333"; wins over spamd',
    ),
    "filter.spamd": ("SpamAssassin spamd", 'host:port or a socket path, e.g. "127.0.0.1:783"'),
    "filter.clamd": ("ClamAV clamd", 'a socket path or host:port, e.g. "/run/clamav/clamd.ctl"'),
    "filter.on_scanner_failure": (
        "When a scanner fails",
        "defer: mail waits on the server; deliver: delivered marked unchecked",
    ),
    "filter.max_size": ("Largest message scanned (bytes)", "larger ones are delivered unscanned"),
    "filter.timeout": ("Scanner timeout (seconds)", "for one answer"),
    "filter.antispam": ("Spam check of a new account", "off, tag or junk"),
    "filter.antivirus": ("Virus check of a new account", "off or quarantine"),
    "notify.mailbox": ("Notices into people's mailboxes", "when an account breaks or recovers"),
    "notify.after_failures": ("Notice after failing runs", "in a row"),
    "notify.after_minutes": ("… or after minutes of failing", "whichever comes first"),
    "notify.admins": ("Admins get every notice too", "else only when the owner cannot be told"),
    "notify.cert_days": ("Notice when a server's certificate expires within (days)", ""),
    "notify.smtp": ("Send notices through this SMTP relay", 'host:port; "" delivers them locally'),
    "notify.webhook": (
        "Webhook for incident events",
        "https URL; its signing key comes from notify.webhook_secret_file",
    ),
    "web.public_url": ("Public address of this web UI", "notices link to account pages with it"),
}
SOURCE_TEXT = {
    "default": "the default",
    "mailhaul.toml": "from mailhaul.toml",
    "database": "saved here",
    "environment": "set by the environment",
}
DOMAIN_FIELDS = ("domain", *EDITABLE_DOMAIN_KEYS)


def admin_of(request: Request) -> SettingsAdmin:
    """The settings use cases."""
    return app_of(request).settings_admin


def shown(value: Any) -> str:
    """A setting's value as a form shows it."""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def source_help(item: SettingValue, meaning: str) -> str:
    """``from mailhaul.toml; between polls of a new account``."""
    where = SOURCE_TEXT[item.source]
    if item.source == "environment":
        where = f"set by the environment ({item.env_var}): change it there"
    elif item.source == "database" and item.updated_by:
        where = f"saved here by {item.updated_by}"
    return "; ".join(part for part in (where, meaning) if part)


def _page(
    request: Request,
    info: SessionInfo,
    overview: SettingsOverview,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str = "",
    status_code: int = 200,
) -> Response:
    settings = overview.settings
    assert settings is not None
    deliveries = [delivery_view("default", settings.delivery)] + [
        delivery_view(domain, delivery)
        for domain, delivery in sorted(settings.delivery_domains.items())
    ]
    fields = [
        {
            "key": item.key,
            "label": LABELS[item.key][0],
            "help": source_help(item, LABELS[item.key][1]),
            "value": (values or {}).get(item.key, shown(item.value)),
            "source": item.source,
            "editable": item.editable,
            "checkbox": isinstance(item.value, bool),
        }
        for item in overview.values
    ]
    return render(
        request,
        "settings.html",
        info,
        status_code=status_code,
        active_nav="settings",
        config_file=str(settings.config_file),
        sections=settings_sections(settings),
        deliveries=deliveries,
        fields=fields,
        domains=overview.domains,
        problem=overview.problem,
        errors=errors or {},
        form_error=form_error,
        source_text=SOURCE_TEXT,
    )


@router.get("/settings")
def settings_page(request: Request, info: Admin) -> Response:
    """The editable settings as a form; the per-domain delivery; the others read-only."""
    return _page(request, info, admin_of(request).overview(info.principal))


@router.post("/settings")
def save_settings(request: Request, info: Admin, form: Form) -> Response:
    """Store what changed; the errors beside their fields otherwise."""
    service = admin_of(request)
    overview = service.overview(info.principal)
    reset = set(form.getlist("reset"))
    changes: dict[str, Any] = {}
    submitted: dict[str, str] = {}
    for item in overview.values:
        if isinstance(item.value, bool) and not item.editable and item.key not in form:
            continue  # a disabled checkbox is not sent
        if isinstance(item.value, bool):
            value = "on" if checked(form, item.key) else ""
        elif item.key in form:
            value = text(form, item.key)
        else:
            continue  # not on the form (set by the environment: shown disabled)
        submitted[item.key] = value
        if item.key in reset and item.source == "database":
            changes[item.key] = None
        elif value != shown(item.value):
            changes[item.key] = (value == "on") if isinstance(item.value, bool) else value
    if not changes:
        return redirect(request, "/settings", info, ("info", "Nothing changed."))
    try:
        service.change(info.principal, changes)
    except SettingsRejected as exc:
        return _page(request, info, overview, submitted, exc.errors, status_code=400)
    except (ConfigError, Forbidden) as exc:
        return _page(request, info, overview, submitted, {}, str(exc), status_code=400)
    names = ", ".join(sorted(changes))
    return redirect(
        request,
        "/settings",
        info,
        ("success", f"Saved {names}. Running services apply it within seconds."),
    )


# --- per-domain delivery ----------------------------------------------------------------------
def _domain_page(
    request: Request,
    info: SessionInfo,
    domain: DomainDelivery | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    form_error: str = "",
    status_code: int = 200,
) -> Response:
    methods = [("", "inherit")] + [(method, method) for method in EDITABLE_METHODS]
    return render(
        request,
        "settings_domain.html",
        info,
        status_code=status_code,
        active_nav="settings",
        target=domain,
        values=values,
        errors=errors or {},
        form_error=form_error,
        methods=methods,
        starttls=[("", "inherit"), ("true", "yes"), ("false", "no")],
        source_text=SOURCE_TEXT,
    )


def _find_domain(overview: SettingsOverview, name: str) -> DomainDelivery | None:
    try:
        wanted = normalise_domain(name)
    except ConfigError:
        return None
    return next((item for item in overview.domains if item.domain == wanted), None)


def _stored_values(domain: DomainDelivery | None) -> dict[str, str]:
    values = {key: "" for key in DOMAIN_FIELDS}
    if domain is not None:
        values["domain"] = domain.domain
        for key, value in domain.stored.items():
            values[key] = (
                ("true" if value else "false") if isinstance(value, bool) else shown(value)
            )
    return values


@router.get("/settings/domains/new")
def new_domain_form(request: Request, info: Admin) -> Response:
    """An empty per-domain delivery form."""
    admin_of(request).overview(info.principal)  # admins only, as every settings route
    return _domain_page(request, info, None, _stored_values(None))


@router.get("/settings/domains/{name}")
def edit_domain_form(request: Request, name: str, info: Admin) -> Response:
    """What the database sets for one domain, and what is in effect."""
    domain = _find_domain(admin_of(request).overview(info.principal), name)
    if domain is None:
        return redirect(request, "/settings/domains/new")
    return _domain_page(request, info, domain, _stored_values(domain))


def _domain_table(form: FormData) -> dict[str, str]:
    """The non-empty fields of the form (empty: inherit)."""
    return {key: text(form, key) for key in EDITABLE_DOMAIN_KEYS if text(form, key)}


@router.post("/settings/domains")
def save_domain(request: Request, info: Admin, form: Form) -> Response:
    """Store a domain's delivery (what the form leaves empty is inherited)."""
    service = admin_of(request)
    values = {key: text(form, key) for key in DOMAIN_FIELDS}
    overview = service.overview(info.principal)
    existing = _find_domain(overview, values["domain"])
    table = _domain_table(form)
    try:
        if not values["domain"]:
            raise SettingsRejected({"domain": "a domain name is required"})
        if not table:
            raise SettingsRejected({"method": "set at least one value (empty ones are inherited)"})
        service.change(info.principal, {"delivery.domains": {values["domain"]: table}})
    except SettingsRejected as exc:
        errors = {_domain_field(name): message for name, message in exc.errors.items()}
        return _domain_page(request, info, existing, values, errors, status_code=400)
    except (ConfigError, Forbidden) as exc:
        return _domain_page(request, info, existing, values, {}, str(exc), status_code=400)
    return redirect(
        request,
        "/settings",
        info,
        ("success", f"Saved the delivery of {values['domain']}. Running services apply it "
         "within seconds."),
    )  # fmt: skip


@router.post("/settings/domains/remove")
def remove_domain(request: Request, info: Admin, form: Form) -> Response:
    """Forget what the database sets for a domain (mailhaul.toml's table, if any, stays)."""
    domain = text(form, "domain")
    service = admin_of(request)
    try:
        service.change(info.principal, {"delivery.domains": {domain: None}})
    except (ConfigError, Forbidden) as exc:
        return redirect(request, "/settings", info, ("error", str(exc)))
    return redirect(request, "/settings", info, ("success", f"Removed the settings of {domain}."))


def _domain_field(name: str) -> str:
    """``delivery.domains."example.org".lmtp`` → ``lmtp``; the domain itself → ``domain``."""
    last = name.rpartition(".")[2]
    return last if last in EDITABLE_DOMAIN_KEYS else "domain"
