"""A sink that picks another sink by the destination's domain (per-domain delivery methods)."""

from __future__ import annotations

import contextlib

from mailhaul.domain.ports import Delivery, MailSink


class RoutingSink:
    """Delegates each call to ``by_domain[domain]`` (domain in lower case), else ``default``.

    Every call names the destination, so a receipt is always checked by the sink that made it
    (as long as the routing table has not changed in between).
    """

    def __init__(self, default: MailSink, by_domain: dict[str, MailSink]) -> None:
        self.default = default
        self.by_domain = {domain.lower().rstrip("."): sink for domain, sink in by_domain.items()}

    def route(self, destination: str) -> MailSink:
        """The sink for a destination address."""
        domain = destination.rpartition("@")[2].lower().rstrip(".")
        return self.by_domain.get(domain, self.default)

    def _sinks(self) -> list[MailSink]:
        unique: dict[int, MailSink] = {id(self.default): self.default}
        for sink in self.by_domain.values():
            unique.setdefault(id(sink), sink)
        return list(unique.values())

    def planned_receipt(self, destination: str, hint: str) -> str | None:
        return self.route(destination).planned_receipt(destination, hint)

    def begin(self, destination: str, receipt: str | None) -> Delivery:
        return self.route(destination).begin(destination, receipt)

    def flush(self) -> None:
        """Flush every sink (each one tracks per thread what needs it)."""
        for sink in self._sinks():
            sink.flush()

    def was_delivered(self, destination: str, receipt: str) -> bool | None:
        return self.route(destination).was_delivered(destination, receipt)

    @property
    def account_label(self) -> str:
        label = getattr(self.default, "account_label", "")
        return label if isinstance(label, str) else ""

    @account_label.setter
    def account_label(self, value: str) -> None:
        """Passed on to every sink that fills ``{account}`` (the MDA sink)."""
        for sink in self._sinks():
            if hasattr(sink, "account_label"):
                sink.account_label = value

    def close(self) -> None:
        """Close every sink that holds connections; never raises."""
        for sink in self._sinks():
            close = getattr(sink, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
