"""The filter stage: spam and virus checks between the spool and the sink.

``Scanners`` is what a delivery configuration has (built from the ``filter.*`` settings);
``FilterStage`` applies one account's options to one spooled message and says where it goes
and which headers it gets. A scanner that cannot judge raises ``ScannerUnavailable``: with
``filter.on_scanner_failure = defer`` that stops the run (the message stays on the server),
with ``deliver`` the message goes on with headers saying it was not checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from mailhaul.adapters.quarantine import QuarantineBox
from mailhaul.domain.errors import ScannerUnavailable, ScanSkipped
from mailhaul.domain.filtering import (
    FilterOptions,
    Judgement,
    Route,
    ScannerFailure,
    SenderContext,
    SpamAction,
    SpamVerdict,
    VirusAction,
    VirusVerdict,
    sender_context,
    spam_headers,
    unchecked_spam_header,
    virus_header,
)
from mailhaul.domain.units import human_bytes

DEFAULT_MAX_SIZE = 20 * 1024 * 1024

ScanObserver = Callable[[str, str, float], None]
"""Told of each scanner call: (scanner, result: clean | spam | infected | skipped | error,
seconds)."""


class SpamScanner(Protocol):
    """rspamd or spamd."""

    name: str

    def check(self, spool: BinaryIO, size: int, sender: SenderContext) -> SpamVerdict:
        """The verdict on a spooled message."""
        ...


class VirusScanner(Protocol):
    """clamd."""

    name: str

    def check(self, spool: BinaryIO) -> VirusVerdict:
        """The verdict on a spooled message."""
        ...


@dataclass(frozen=True)
class Scanners:
    """The scanners this server has and what to do when one fails."""

    spool_dir: Path
    quarantine: QuarantineBox
    spam: SpamScanner | None = None
    virus: VirusScanner | None = None
    on_failure: ScannerFailure = ScannerFailure.DEFER
    max_size: int = DEFAULT_MAX_SIZE
    observer: ScanObserver | None = None

    def observe(self, scanner: str, result: str, started: float) -> None:
        """Tell the observer (the service's metrics) about one scanner call."""
        if self.observer is not None:
            self.observer(scanner, result, time.monotonic() - started)


@dataclass
class _Findings:
    headers: list[bytes] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


class FilterStage:
    """One account's checks, applied to one spooled message at a time."""

    def __init__(self, scanners: Scanners, options: FilterOptions) -> None:
        self.scanners = scanners
        self.options = options

    def judge(self, spool: BinaryIO, size: int, head: bytes) -> Judgement:
        """Where the message goes and the headers it gets (prepended above its own)."""
        options, scanners = self.options, self.scanners
        found = _Findings()
        if size > scanners.max_size:
            why = f"larger than filter.max_size ({human_bytes(scanners.max_size)})"
            return self._unscanned(found, why)
        virus: VirusVerdict | None = None
        if options.antivirus is VirusAction.QUARANTINE:
            virus = self._virus_check(spool, found)
            if virus is not None and virus.infected:
                return Judgement(Route.QUARANTINE, virus=virus)
        spam: SpamVerdict | None = None
        if options.antispam is not SpamAction.OFF:
            spam = self._spam_check(spool, size, head, found)
        route = Route.MAILBOX
        if spam is not None and spam.is_spam and options.antispam is SpamAction.JUNK:
            route = Route.JUNK
        return Judgement(route, b"".join(found.headers), spam, virus, tuple(found.unchecked))

    def _unscanned(self, found: _Findings, why: str) -> Judgement:
        if self.options.antispam is not SpamAction.OFF:
            found.headers.append(unchecked_spam_header(why))
        if self.options.antivirus is not VirusAction.OFF:
            found.headers.append(virus_header(None, why))
        return Judgement(Route.MAILBOX, b"".join(found.headers), unchecked=(why,))

    def _virus_check(self, spool: BinaryIO, found: _Findings) -> VirusVerdict | None:
        scanner, started = self.scanners.virus, time.monotonic()
        try:
            if scanner is None:
                raise ScannerUnavailable("antivirus", "no virus scanner is set (filter.clamd)")
            verdict = scanner.check(spool)
        except ScanSkipped as exc:
            self.scanners.observe(exc.scanner, "skipped", started)
            found.headers.append(virus_header(None, str(exc)))
            found.unchecked.append(str(exc))
            return None
        except ScannerUnavailable as exc:
            self.scanners.observe(exc.scanner, "error", started)
            self._give_up_unless_delivering(exc)
            found.headers.append(virus_header(None, str(exc)))
            found.unchecked.append(str(exc))
            return None
        self.scanners.observe(scanner.name, "infected" if verdict.infected else "clean", started)
        if not verdict.infected:
            found.headers.append(virus_header(verdict))
        return verdict

    def _spam_check(
        self, spool: BinaryIO, size: int, head: bytes, found: _Findings
    ) -> SpamVerdict | None:
        scanner, started = self.scanners.spam, time.monotonic()
        try:
            if scanner is None:
                raise ScannerUnavailable(
                    "antispam", "no spam scanner is set (filter.rspamd or filter.spamd)"
                )
            verdict = scanner.check(spool, size, sender_context(head))
        except ScanSkipped as exc:
            self.scanners.observe(exc.scanner, "skipped", started)
            found.headers.append(unchecked_spam_header(str(exc)))
            found.unchecked.append(str(exc))
            return None
        except ScannerUnavailable as exc:
            self.scanners.observe(exc.scanner, "error", started)
            self._give_up_unless_delivering(exc)
            found.headers.append(unchecked_spam_header(str(exc)))
            found.unchecked.append(str(exc))
            return None
        self.scanners.observe(scanner.name, "spam" if verdict.is_spam else "clean", started)
        found.headers.append(spam_headers(verdict))
        return verdict

    def _give_up_unless_delivering(self, exc: ScannerUnavailable) -> None:
        if self.scanners.on_failure is ScannerFailure.DEFER:
            detail = str(exc).removeprefix(f"{exc.scanner}: ")
            raise ScannerUnavailable(
                exc.scanner,
                f"{detail}; mail waits on the server until it answers "
                "(filter.on_scanner_failure = defer)",
            ) from exc
