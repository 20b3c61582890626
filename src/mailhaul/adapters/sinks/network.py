"""What the LMTP and SMTP sinks share: one connection per run's session (reused from message to
message, and given back to the sink for the next session), one transaction per message, the
message streamed into ``DATA`` as the poller writes it.

Where each error can come from:

- ``begin()``: the connection (refused, timeout, greeting, EHLO/LHLO, STARTTLS, AUTH) →
  ``TemporaryDeliveryError``. With a fixed ``sender`` the transaction opens here too, so the
  ``MAIL``/``RCPT``/``DATA`` refusals below also come from ``begin()``.
- the ``write()`` that completes the header section (sender taken from the headers; or
  ``commit()`` when the message ends before its header section does): ``MAIL``/``RCPT``/``DATA``
  refusals — 4xx → ``TemporaryDeliveryError``; 5xx at ``RCPT`` with an enhanced code 5.1.x (or
  550/551/553 without one) → ``DestinationMissing``; other 5xx → ``PermanentDeliveryError``.
- any ``write()``: the connection lost or timed out → ``TemporaryDeliveryError``.
- ``commit()``: the reply after the data: 4xx → ``TemporaryDeliveryError``, 5xx →
  ``PermanentDeliveryError`` with the server's text; a lost connection → temporary.

Each reply must be complete within ``timeout`` (a dripping or endless reply is given up on).
While a delivery is open its connection is registered with the run's ``RunGuard``: a
service that stops cuts it (the message is not recorded and stays on the source).

``abort()`` never delivers: during ``DATA`` it drops the connection without sending the
terminator (the server throws the partial message away); before it, it sends ``RSET``.

A 2xx after ``DATA`` means the server has the message on stable storage, so ``flush()`` has
nothing to do. A network hand-off cannot be checked afterwards: ``planned_receipt()`` and
``was_delivered()`` return None, and a run that dies between the server's 2xx and the
poller's record fetches that message again next run — the one duplicate window left.
"""

from __future__ import annotations

import contextlib
import threading
import time

from mailhaul.adapters.sinks.envelope import HeaderBuffer, folder_address, is_plain_address
from mailhaul.adapters.sinks.smtp_client import Reply, SmtpClient, parse_address
from mailhaul.adapters.tls import client_context
from mailhaul.domain.deadlines import current_guard
from mailhaul.domain.errors import (
    ConfigError,
    DeliveryError,
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

MAX_IDLE = 60.0  # an idle connection older than this is not reused (servers time out)


def _refusal(client: SmtpClient, step: str, reply: Reply) -> DeliveryError:
    what = f"{client.name} server {client.address} refused {step}: {reply}"
    if reply.code == 421:  # the server is closing the connection
        client.close()
    # 500/502/503/504: the conversation went wrong, not the message; 530: AUTH needed (setup)
    if reply.code < 500 or reply.code in (500, 502, 503, 504, 530):
        return TemporaryDeliveryError(what)
    return PermanentDeliveryError(what)


def _rcpt_refusal(client: SmtpClient, destination: str, reply: Reply) -> DeliveryError:
    enhanced = reply.enhanced
    missing = enhanced.startswith("5.1.") if enhanced else reply.code in (550, 551, 553)
    if reply.code >= 500 and missing:
        return DestinationMissing(
            f"{client.name} server {client.address}: no mailbox {destination}: {reply}"
        )
    return _refusal(client, f"the recipient {destination}", reply)


class NetworkDelivery:
    """One message on its way into ``DATA``."""

    def __init__(
        self, session: NetworkSession, client: SmtpClient, destination: str, sender: str | None
    ) -> None:
        self._session = session
        self._client: SmtpClient | None = client
        self._destination = destination
        self._header: HeaderBuffer | None = None
        self._unregister = current_guard().register(client.interrupt)
        if sender is None:
            self._header = HeaderBuffer()
        else:
            self._open(sender)

    def _require(self) -> SmtpClient:
        if self._client is None:
            raise TemporaryDeliveryError("this delivery has already ended")
        return self._client

    def _open(self, sender: str) -> None:
        """MAIL, RCPT, DATA; on a refusal end the transaction and give the connection back."""
        client = self._require()
        try:
            reply = client.mail(sender, smtputf8=not self._destination.isascii())
            if reply.code != 250:
                raise _refusal(client, f"the sender <{sender}>", reply)
            reply = client.rcpt(self._destination)
            if not 200 <= reply.code < 300:
                raise _rcpt_refusal(client, self._destination, reply)
            reply = client.data()
            if reply.code != 354:
                raise _refusal(client, "DATA", reply)
        except DeliveryError:
            self.abort()
            raise

    def write(self, chunk: bytes) -> None:
        """Stream a chunk (held until the header section is complete without a fixed sender)."""
        client = self._require()
        if self._header is not None:
            self._header.add(chunk)
            if not self._header.complete:
                return
            self._start_from_header()
            return
        try:
            client.write(chunk)
        except DeliveryError:
            self.abort()
            raise

    def _start_from_header(self) -> None:
        assert self._header is not None
        header, self._header = self._header, None
        self._open(header.sender())
        try:
            self._require().write(header.take())
        except DeliveryError:
            self.abort()
            raise

    def commit(self) -> None:
        """Send the terminator and read the verdict; None: a hand-off has no receipt."""
        if self._header is not None:
            self._start_from_header()
        client = self._require()
        try:
            replies = client.end_data()
        except DeliveryError:
            self.abort()
            raise
        self._client = None
        self._unregister()
        self._session.release(client)
        for reply in replies:
            if not 200 <= reply.code < 300:
                raise _refusal(client, f"the message for {self._destination}", reply)
        return None

    def abort(self) -> None:
        """Cancel without delivering; never raises."""
        client, self._client = self._client, None
        self._header = None
        if client is None:
            return
        self._unregister()
        if client.in_data or not client.connected:
            client.close()  # no terminator: the server discards what it got
            self._session.release(client)
            return
        if client.in_transaction:
            try:
                if client.rset().code != 250:
                    client.close()
            except DeliveryError:
                client.close()
        self._session.release(client)


class NetworkSink:
    """Delivers over SMTP or LMTP; each run's session holds one connection, reused while it
    answers RSET, and idle connections wait here for the next session."""

    default_port = 25
    folder_detail = ""  # LMTP: the delimiter of local+Folder@domain ("": no folders)

    def __init__(
        self,
        address: str,
        timeout: float,
        sender: str | None = None,
        *,
        lmtp: bool,
        starttls: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if sender is not None and sender != "" and not is_plain_address(sender):
            raise ConfigError(f"envelope sender {sender!r} is not a plain local@domain address")
        if (username is None) != (password is None):
            raise ConfigError("the relay username and password go together")
        if username is not None and not starttls:
            raise ConfigError("relay credentials need STARTTLS (never sent in clear)")
        self.address = parse_address(address, self.default_port)
        if starttls:
            client_context(ca_file)  # a bad CA file is a settings error, found now
        self.timeout = timeout
        self.sender = sender
        self._lmtp = lmtp
        self._starttls = starttls
        self._ca_file = ca_file
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._idle: list[tuple[SmtpClient, float]] = []  # no session holds these

    def new_client(self) -> SmtpClient:
        """A client for one more connection (not yet connected)."""
        return SmtpClient(
            self.address,
            self.timeout,
            lmtp=self._lmtp,
            starttls=self._starttls,
            ca_file=self._ca_file,
            username=self._username,
            password=self._password,
        )

    def take_idle(self) -> tuple[SmtpClient, float] | None:
        """The most recently used idle connection and since when it is idle, if any."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, client: SmtpClient, idle_since: float) -> None:
        """Keep a connection a session no longer needs, for the next session."""
        if not client.connected or client.interrupted:
            client.close()
            return
        now = time.monotonic()
        with self._lock:
            stale = [(c, t) for c, t in self._idle if now - t >= MAX_IDLE]
            self._idle = [(c, t) for c, t in self._idle if now - t < MAX_IDLE]
            self._idle.append((client, idle_since))
        for old, _since in stale:  # the server will have hung up on these
            with contextlib.suppress(Exception):
                old.quit()

    # --- MailSink ------------------------------------------------------------------------------

    def files_folders(self, destination: str) -> bool:
        """LMTP with ``lmtp_folder_detail`` set (``local+Folder@domain``); not SMTP."""
        return bool(self.folder_detail)

    def open_session(self, account_label: str) -> NetworkSession:
        """One run's deliveries (the label is not used over the network)."""
        return NetworkSession(self)

    def close(self) -> None:
        """QUIT every idle connection; the sink stays usable."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client, _since in idle:
            with contextlib.suppress(Exception):
                client.quit()


class NetworkSession:
    """One run's deliveries over LMTP or SMTP: the connection it holds between messages."""

    def __init__(self, sink: NetworkSink) -> None:
        self._sink = sink
        self._client: SmtpClient | None = None
        self._idle_since = 0.0

    def _acquire(self) -> SmtpClient:
        """The session's connection (else an idle one of the sink) if it still answers RSET,
        else a new one."""
        client, since = self._client, self._idle_since
        self._client = None
        if client is None:
            taken = self._sink.take_idle()
            if taken is not None:
                client, since = taken
        if client is not None:
            if client.connected and time.monotonic() - since < MAX_IDLE:
                try:
                    if client.rset().code == 250:
                        return client
                except DeliveryError:
                    pass
            client.quit()
        client = self._sink.new_client()
        client.connect()
        return client

    def release(self, client: SmtpClient) -> None:
        """Keep a connection that ended its transaction for the session's next message."""
        if not client.connected or client.interrupted:
            client.close()
            return
        old = self._client
        if old is not None and old is not client:
            old.quit()
        self._client = client
        self._idle_since = time.monotonic()

    def planned_receipt(self, destination: str, hint: str) -> str | None:
        """None: a network hand-off leaves nothing to look up later."""
        return None

    def begin(
        self, destination: str, receipt: str | None, folder: str | None = None
    ) -> NetworkDelivery:
        """Connect (or reuse the session's connection) and start a transaction. A message
        for ``folder`` goes to ``local+folder@domain`` where the sink knows the server's
        delimiter (``lmtp_folder_detail``), else into the mailbox (the server's own rules
        may file it)."""
        if not is_plain_address(destination):
            raise DestinationMissing(f"{destination!r} is not an address that can be sent to")
        delimiter = self._sink.folder_detail
        client = self._acquire()
        try:
            if folder and delimiter:
                utf8 = "SMTPUTF8" in client.extensions
                destination = folder_address(destination, delimiter, folder, utf8) or destination
            return NetworkDelivery(self, client, destination, self._sink.sender)
        except DeliveryError:
            raise  # the delivery has ended its transaction and given the connection back
        except BaseException:
            client.close()
            raise

    def flush(self) -> None:
        """Nothing to do: a 2xx after DATA means the server has stored the message."""

    def was_delivered(self, destination: str, receipt: str) -> bool | None:
        """None: a hand-off cannot be checked afterwards (the message is fetched again)."""
        return None

    def close(self) -> None:
        """Give the connection back to the sink for the next session; never raises."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                self._sink.give_back(client, self._idle_since)
