"""The delivery methods: one entry each, read by the settings' check, by ``bootstrap`` (which
builds the sink) and by what shows or edits delivery (the CLI, the web settings page, the API).

Pure data: a method names the module of its sink (in ``adapters/sinks/``), whose
``sink_from_settings(delivery, home)`` builds the sink from a ``[delivery]`` table; the
settings keys a method reads are ``DeliverySettings`` fields in ``settings_keys.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryMethod:
    """One way of delivering mail locally: its sink and the settings it needs."""

    name: str  # the value of ``delivery.method``
    sink_module: str  # the module whose ``sink_from_settings`` builds the sink
    required: tuple[str, ...]  # the settings keys that must not be empty
    target_key: str  # the key whose value says where mail goes (shown to people)
    web_editable: bool  # whether an admin may choose it in the web UI, the API or the CLI


DELIVERY_METHODS: dict[str, DeliveryMethod] = {
    method.name: method
    for method in (
        DeliveryMethod(
            "maildir",
            "mailhaul.adapters.sinks.maildir",
            required=("maildir_path",),
            target_key="maildir_path",
            web_editable=True,
        ),
        DeliveryMethod(
            "lmtp",
            "mailhaul.adapters.sinks.lmtp",
            required=("lmtp",),
            target_key="lmtp",
            web_editable=True,
        ),
        DeliveryMethod(
            "smtp",
            "mailhaul.adapters.sinks.smtp",
            required=("smtp",),
            target_key="smtp",
            web_editable=True,
        ),
        # Not from the web: an admin there must not make the service run a command.
        DeliveryMethod(
            "mda",
            "mailhaul.adapters.sinks.mda",
            required=("mda",),
            target_key="mda",
            web_editable=False,
        ),
    )
}
EDITABLE_METHODS = tuple(name for name, method in DELIVERY_METHODS.items() if method.web_editable)
