"""A sink that picks another sink by the destination's domain (per-domain delivery methods)."""

from __future__ import annotations

import contextlib

from mailhaul.domain.ports import Delivery, DeliverySession, MailSink


class RoutingSink:
    """Delegates each destination to ``by_domain[domain]`` (domain in lower case), else
    ``default``.

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

    def sinks(self) -> list[MailSink]:
        """Every sink routed to, each once."""
        unique: dict[int, MailSink] = {id(self.default): self.default}
        for sink in self.by_domain.values():
            unique.setdefault(id(sink), sink)
        return list(unique.values())

    def files_folders(self, destination: str) -> bool:
        """Whether the sink ``destination`` is routed to files into folders."""
        return self.route(destination).files_folders(destination)

    def open_session(self, account_label: str) -> RoutingSession:
        """A session that opens the routed sinks' own sessions as destinations need them."""
        return RoutingSession(self, account_label)

    def close(self) -> None:
        """Close every sink routed to; never raises."""
        for sink in self.sinks():
            with contextlib.suppress(Exception):
                sink.close()


class RoutingSession:
    """One run's deliveries through a ``RoutingSink``: one session per sink it has used."""

    def __init__(self, sink: RoutingSink, account_label: str) -> None:
        self._sink = sink
        self._label = account_label
        self._open: dict[int, DeliverySession] = {}

    def _session(self, destination: str) -> DeliverySession:
        sink = self._sink.route(destination)
        session = self._open.get(id(sink))
        if session is None:
            session = self._open[id(sink)] = sink.open_session(self._label)
        return session

    def planned_receipt(self, destination: str, hint: str) -> str | None:
        return self._session(destination).planned_receipt(destination, hint)

    def begin(self, destination: str, receipt: str | None, folder: str | None = None) -> Delivery:
        return self._session(destination).begin(destination, receipt, folder)

    def flush(self) -> None:
        """Flush every session this one has opened."""
        for session in self._open.values():
            session.flush()

    def was_delivered(self, destination: str, receipt: str) -> bool | None:
        return self._session(destination).was_delivered(destination, receipt)

    def close(self) -> None:
        """Close every session this one has opened; never raises."""
        sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            with contextlib.suppress(Exception):
                session.close()
