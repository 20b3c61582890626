"""A scripted POP3 server for tests: real sockets on 127.0.0.1, faults on demand.

Start one with a ``Pop3Script`` (what it serves and how it behaves) and use it as a
context manager; it listens on an OS-chosen port and serves each connection in a
thread. Mail persists across sessions: deletions are committed at QUIT, as on a real
server (RFC 1939), and are visible in ``server.mailbox`` afterwards.

    script = Pop3Script(messages=[b"Subject: hi\\r\\n\\r\\nbody\\r\\n"], pipelining=False)
    with ScriptedPop3Server(script) as server:
        endpoint = server.endpoint()            # SourceEndpoint(POP3, 127.0.0.1, port, none)
        ...                                     # run the client
        assert "PASS" in server.verbs()
        assert server.errors == []              # no unexpected exception in the server

``Pop3Script`` fields (all optional):
    messages            the maildrop, as stored bytes (sent dot-stuffed, CRLF added if
                        a message does not end with one, like a real server)
    uids                their UIDL strings (default ``uid-1``, ``uid-2``, …)
    username, password  the one account (default ``alice`` / ``s3cret``)
    capa                answer CAPA (False: ``-ERR``, like an RFC 1939-only server)
    user, sasl_plain    offer USER/PASS, and SASL PLAIN (``AUTH PLAIN``, RFC 5034)
    stls, pipelining, uidl, top, resp_codes
                        offer STLS (needs ``tls_context``), PIPELINING, UIDL, TOP, RESP-CODES;
                        a command that is not offered answers ``-ERR``
    extra_capabilities  more CAPA lines
    greeting            the greeting line, without CRLF
    login_error         if set, PASS and AUTH answer ``-ERR <login_error>``
                        (e.g. ``"[AUTH] Invalid credentials"`` or ``"[IN-USE] locked"``)
    drop_after_bytes    drop every session after it has sent this many bytes
    faults              a list of ``Fault``
    dot_stuffing        False: RETR sends messages without dot-stuffing (a broken server:
                        a line holding only "." ends the message early)
    listed_sizes        {uid: size} the LIST answer gives instead of the real size
    uidl_numbers        UIDL answers message numbers (``1``, ``2``…), reused after QUIT
    utf8                offer UTF8 (RFC 6856) like Courier: until the client says UTF8,
                        a message with raw 8-bit header bytes is served as Courier's
                        "Cannot display Unicode content" wrapper (a new boundary each session)

``Fault(command, action, …)`` — when the server receives ``command`` (a verb such as
``"RETR"``, or ``"GREETING"`` for the greeting), optionally only with argument ``arg`` (e.g.
``"2"``), only in session ``session`` (0-based) and only on its ``occurrence``-th match
(then it is spent, unless ``repeat``; every fault counts every command, and when several
fire at once the first in the list wins):
    1. the command is carried out (state changes: DELE marks, QUIT commits, PASS logs in),
       unless ``apply=False``;
    2. the reply sent is ``data`` if given, else the normal reply, cut to its first
       ``after_bytes`` bytes if given;
    3. then ``action``: ``"reply"`` carries on, ``"drop"`` closes the connection,
       ``"hang"`` waits ``seconds`` (or until the server stops) and then closes it.
    Examples: ``Fault("RETR", "drop", after_bytes=1000)`` (connection lost mid-message),
    ``Fault("LIST", "reply", data=b"HELLO\\r\\n")`` (garbage), ``Fault("GREETING", "hang")``,
    ``Fault("QUIT", "drop", after_bytes=0)`` (committed, reply lost),
    ``Fault("QUIT", "drop", apply=False)`` (never committed).

``ScriptedPop3Server(script, tls_context=None, implicit_tls=False)`` (a context manager;
or ``start()`` and, always, ``stop()``: the listening socket exists from construction):
    tls_context         a server ``ssl.SSLContext``: used for STLS, or for every
                        connection with ``implicit_tls=True`` (POP3S)
    host, port          where it listens; ``endpoint(security=NONE, *, timeout=5.0,
                        verify_cert=True, ca_file=None, host=None)`` builds a
                        ``SourceEndpoint`` for it
    commands            every command line received, as ``Received(session, line, tls,
                        batch)``; ``batch`` > 1 means more commands were already waiting
                        (the client pipelined); ``verbs(session=None)`` / ``lines(…)``
    mailbox             the messages now stored, as ``(uid, bytes)`` tuples
    sessions            how many connections were accepted
    errors              unexpected exceptions raised in the server (should stay empty);
                        disconnects and TLS handshake failures are not errors
    wait_idle(timeout)  wait until every session thread has ended

``stuff(message)`` is the server's own RETR encoding (CRLF completion, dot-stuffing,
terminator), for tests that build raw replies for ``Fault(data=…)``.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mailhaul.domain.options import Protocol, Security, SourceEndpoint
from support.scripted_oauth import GMAIL_CHALLENGE, OAuthLogin, read_response

POLL = 0.05
"""How often blocked socket calls in the server wake up to check for stop()."""
SEND_PIECE = 64 * 1024


@dataclass
class Fault:
    """Something going wrong at a command; see the module docstring."""

    command: str
    action: Literal["reply", "drop", "hang"]
    data: bytes | None = None
    after_bytes: int | None = None
    seconds: float = 30.0
    arg: str | None = None
    session: int | None = None
    occurrence: int = 1
    repeat: bool = False
    apply: bool = True
    seen: int = field(default=0, init=False)

    def matches(self, verb: str, arg: str, session: int) -> bool:
        """Count a command and tell whether the fault fires on it."""
        if verb != self.command.upper() or (self.arg is not None and arg != self.arg):
            return False
        if self.session is not None and session != self.session:
            return False
        self.seen += 1
        return self.seen == self.occurrence or (self.repeat and self.seen > self.occurrence)


@dataclass
class Pop3Script:
    """What the server serves and how it behaves; see the module docstring."""

    messages: list[bytes] = field(default_factory=list)
    uids: list[str] | None = None
    username: str = "alice"
    password: str = "s3cret"
    capa: bool = True
    user: bool = True
    sasl_plain: bool = False
    oauth: tuple[str, ...] = ()  # SASL mechanisms offered for OAuth2: XOAUTH2, OAUTHBEARER
    token: str = ""  # the access token it takes (with ``username``)
    microsoft: bool = False  # as Outlook: the one-step AUTH XOAUTH2 is refused, a bad token
    # gets "-ERR Authentication failure" at once; otherwise Gmail's error challenge
    stls: bool = False
    pipelining: bool = True
    uidl: bool = True
    top: bool = True
    resp_codes: bool = True
    extra_capabilities: list[str] = field(default_factory=list)
    greeting: str = "+OK scripted POP3 server ready"
    login_error: str | None = None
    drop_after_bytes: int | None = None
    faults: list[Fault] = field(default_factory=list)
    dot_stuffing: bool = True
    listed_sizes: dict[str, int] = field(default_factory=dict)
    uidl_numbers: bool = False
    utf8: bool = False


@dataclass(frozen=True)
class Received:
    """One command line the server received."""

    session: int
    line: str
    tls: bool
    batch: int

    @property
    def verb(self) -> str:
        """The command verb, upper-case."""
        return self.line.split(" ", 1)[0].upper()


Result = tuple[bytes, Callable[[], None] | None]
"""A command's reply bytes, and what to do once they are sent."""


class _Closed(Exception):
    """The session ends (client gone, dropped on purpose, or server stopping)."""


def stuff(message: bytes, dot_stuffing: bool = True) -> bytes:
    """``message`` as a RETR body: CRLF-completed, dot-stuffed, with the terminator."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    if not dot_stuffing:
        return message + b".\r\n"
    lines = message.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return stuffed + b".\r\n"


def courier_unicode_wrapper(message: bytes) -> bytes:
    """What Courier POP3 serves instead of a message with 8-bit headers to a client that did
    not say UTF8: a generated notice with the original attached (new boundary each time)."""
    boundary = secrets.token_hex(12)
    return (
        b"From: Mail Delivery Subsystem <postmaster>\r\n"
        b"Subject: Cannot display Unicode content\r\n"
        b"Mime-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="%s"\r\n'
        b"\r\n--%s\r\nContent-Type: text/plain\r\n\r\n"
        b"This E-mail message was determined to be Unicode-formatted\r\n"
        b"--%s\r\nContent-Type: message/global\r\n\r\n%s\r\n--%s--\r\n"
        % (boundary.encode(), boundary.encode(), boundary.encode(), message, boundary.encode())
    )


def has_8bit_header(message: bytes) -> bool:
    """Whether the header section holds raw 8-bit bytes."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    return any(byte >= 0x80 for byte in head)


class ScriptedPop3Server:
    """A threaded POP3 server on 127.0.0.1 driven by a ``Pop3Script``."""

    def __init__(
        self,
        script: Pop3Script,
        tls_context: ssl.SSLContext | None = None,
        *,
        implicit_tls: bool = False,
    ) -> None:
        self.script = script
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        uids = script.uids or [f"uid-{i + 1}" for i in range(len(script.messages))]
        self.mailbox: list[tuple[str, bytes]] = list(zip(uids, script.messages, strict=True))
        self.commands: list[Received] = []
        self.oauth_logins: list[OAuthLogin] = []
        self.oauth_replies: list[str] = []  # what the client answered an error challenge
        self.errors: list[BaseException] = []
        self.sessions = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> ScriptedPop3Server:
        self.start()
        return self

    def start(self) -> None:
        """Start accepting connections (``with`` does this; pair it with ``stop()``)."""
        self._acceptor.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, end every session, and wait for the threads."""
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._listener.close()
        self.wait_idle(5)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every session thread has ended."""
        for thread in list(self._threads):
            thread.join(timeout)

    def endpoint(
        self,
        security: Security = Security.NONE,
        *,
        timeout: float = 5.0,
        verify_cert: bool = True,
        ca_file: str | None = None,
        host: str | None = None,
    ) -> SourceEndpoint:
        """A SourceEndpoint pointing at this server."""
        return SourceEndpoint(
            Protocol.POP3,
            host or self.host,
            self.port,
            security,
            verify_cert=verify_cert,
            ca_file=ca_file,
            timeout=timeout,
        )

    def verbs(self, session: int | None = None) -> list[str]:
        """The verbs received (in one session, or all)."""
        return [c.verb for c in self.commands if session is None or c.session == session]

    def lines(self, session: int | None = None) -> list[str]:
        """The command lines received (in one session, or all)."""
        return [c.line for c in self.commands if session is None or c.session == session]

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                index = self.sessions
                self.sessions += 1
            thread = threading.Thread(target=_Session(self, sock, index).run, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep, waking early if the server stops."""
        self._stop.wait(seconds)


class _Session:
    """One connection."""

    def __init__(self, server: ScriptedPop3Server, sock: socket.socket, index: int) -> None:
        self.server = server
        self.script = server.script
        sock.settimeout(POLL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = sock
        self.index = index
        self.buf = b""
        self.sent = 0
        self.tls = False
        self.username: str | None = None
        self.maildrop: list[tuple[str, bytes]] | None = None  # set once logged in
        self.deleted: set[int] = set()
        self.utf8 = False  # the client said UTF8

    # plumbing ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.server.implicit_tls:
                self._start_tls()
            self._command("GREETING", "", lambda _: (self.script.greeting.encode() + b"\r\n", None))
            while True:
                line, batch = self._readline()
                text = line.decode("latin-1")
                self.server.commands.append(Received(self.index, text, self.tls, batch))
                verb, _, arg = text.partition(" ")
                handler = getattr(self, f"do_{verb.lower()}", None)
                if handler is None or not verb.isalnum():
                    handler = self._unknown
                self._command(verb.upper(), arg, handler)
        except (_Closed, OSError):  # gone, dropped on purpose, or TLS refused
            pass
        except Exception as exc:  # recorded for the test to see
            self.server.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()

    def _command(
        self,
        verb: str,
        arg: str,
        handler: Callable[[str], tuple[bytes, Callable[[], None] | None]],
    ) -> None:
        firing = [f for f in self.script.faults if f.matches(verb, arg, self.index)]
        fault = firing[0] if firing else None
        if fault is None:
            reply, after = handler(arg)
            self._send(reply)
            if after is not None:
                after()
            return
        reply, after = handler(arg) if fault.apply else (b"", None)
        if fault.data is not None:
            reply = fault.data
        if fault.after_bytes is not None:
            reply = reply[: fault.after_bytes]
        self._send(reply)
        if fault.action == "hang":
            self.server.pause(fault.seconds)
        if fault.action in ("drop", "hang"):
            raise _Closed
        if after is not None:
            after()

    def _readline(self) -> tuple[bytes, int]:
        while b"\n" not in self.buf:
            self.buf += self._recv()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r"), 1 + self.buf.count(b"\n")

    def _recv(self) -> bytes:
        while True:
            if self.server.stopping():
                raise _Closed
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise _Closed
            return data

    def _send(self, data: bytes) -> None:
        limit = self.script.drop_after_bytes
        cut = limit is not None and self.sent + len(data) > limit
        if limit is not None and cut:
            data = data[: max(0, limit - self.sent)]
        view = memoryview(data)
        while view:
            piece = view[:SEND_PIECE]
            try:
                count = self.sock.send(piece)
            except TimeoutError:
                if self.server.stopping():
                    raise _Closed from None
                continue
            view = view[count:]
            self.sent += count
        if cut:
            raise _Closed

    def _start_tls(self) -> None:
        assert self.server.tls_context is not None
        self.sock.settimeout(5)
        self.sock = self.server.tls_context.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(POLL)
        self.tls = True
        self.buf = b""

    # commands ---------------------------------------------------------------------------
    @staticmethod
    def _ok(text: str = "") -> Result:
        return (b"+OK " + text.encode() + b"\r\n" if text else b"+OK\r\n"), None

    @staticmethod
    def _err(text: str) -> Result:
        return b"-ERR " + text.encode() + b"\r\n", None

    def _unknown(self, arg: str) -> Result:
        return self._err("unknown command")

    def _capabilities(self) -> list[str]:
        s = self.script
        names = [
            *(["TOP"] if s.top else []),
            *(["UIDL"] if s.uidl else []),
            *(["USER"] if s.user else []),
            *(
                [" ".join(["SASL", *(["PLAIN"] if s.sasl_plain else []), *s.oauth])]
                if s.sasl_plain or s.oauth
                else []
            ),
            *(["PIPELINING"] if s.pipelining else []),
            *(["RESP-CODES", "AUTH-RESP-CODE"] if s.resp_codes else []),
            *(["STLS"] if self._stls_offered() else []),
            *(["UTF8"] if s.utf8 else []),
            *s.extra_capabilities,
        ]
        return names

    def _stls_offered(self) -> bool:
        return (
            self.script.stls
            and self.server.tls_context is not None
            and not self.tls
            and self.maildrop is None
        )

    def do_capa(self, arg: str) -> Result:
        if not self.script.capa:
            return self._err("unknown command")
        body = "".join(f"{name}\r\n" for name in self._capabilities())
        return f"+OK capability list follows\r\n{body}.\r\n".encode(), None

    def do_stls(self, arg: str) -> Result:
        if not self._stls_offered():
            return self._err("STLS not available")
        return b"+OK begin TLS negotiation\r\n", self._start_tls

    def do_utf8(self, arg: str) -> Result:
        if not self.script.utf8 or self.maildrop is not None:
            return self._err("UTF8 not available in this state")
        self.utf8 = True
        return self._ok("UTF8 enabled")

    def do_user(self, arg: str) -> Result:
        if not self.script.user or self.maildrop is not None:
            return self._err("USER not available")
        self.username = arg
        return self._ok("send PASS")

    def do_pass(self, arg: str) -> Result:
        if not self.script.user or self.username is None or self.maildrop is not None:
            return self._err("send USER first")
        return self._log_in(self.username, arg)

    def do_auth(self, arg: str) -> Result:
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() in self.script.oauth:
            return self._auth_oauth(mechanism.upper(), initial)
        if not self.script.sasl_plain or mechanism.upper() != "PLAIN":
            return self._err("unsupported mechanism")
        if self.maildrop is not None:
            return self._err("already logged in")
        if not initial:
            self._send(b"+ \r\n")
            initial = self._readline()[0].decode("latin-1")
        if initial == "*":
            return self._err("authentication cancelled")
        try:
            _, user, password = base64.b64decode(initial, validate=True).split(b"\0")
        except ValueError:
            return self._err("[AUTH] malformed PLAIN response")
        return self._log_in(user.decode(), password.decode())

    def _auth_oauth(self, mechanism: str, initial: str) -> Result:
        s = self.script
        if self.maildrop is not None:
            return self._err("already logged in")
        if initial and s.microsoft:
            return self._err("Protocol error: the initial response is not accepted")
        if not initial:
            self._send(b"+ \r\n")
            initial = self._readline()[0].decode("latin-1").strip()
        login = read_response(mechanism, initial)
        if login is None:
            return self._err("[AUTH] malformed SASL response")
        self.server.oauth_logins.append(login)
        if login.token == s.token and login.user == s.username:
            with self.server.lock:
                self.maildrop = list(self.server.mailbox)
            return self._ok("User successfully authenticated.")
        if s.microsoft:
            return self._err("Authentication failure: unknown user name or bad password.")
        self._send(f"+ {GMAIL_CHALLENGE}\r\n".encode())
        self.server.oauth_replies.append(self._readline()[0].decode("latin-1").strip())
        return self._err("[AUTH] Invalid credentials (Failure)")

    def _log_in(self, user: str, password: str) -> Result:
        if self.script.login_error is not None:
            return self._err(self.script.login_error)
        if (user, password) != (self.script.username, self.script.password):
            return self._err("[AUTH] authentication failed")
        with self.server.lock:
            self.maildrop = list(self.server.mailbox)
        return self._ok("logged in")

    def _message(self, arg: str) -> int | None:
        """The 0-based index of message ``arg`` if it exists and is not deleted."""
        if self.maildrop is None or not arg.isdigit():
            return None
        index = int(arg) - 1
        if not 0 <= index < len(self.maildrop) or index in self.deleted:
            return None
        return index

    def _stored(self, index: int) -> bytes:
        assert self.maildrop is not None
        data = self.maildrop[index][1]
        if self.script.utf8 and not self.utf8 and has_8bit_header(data):
            return courier_unicode_wrapper(data)
        return data

    def _uid(self, index: int) -> str:
        assert self.maildrop is not None
        return str(index + 1) if self.script.uidl_numbers else self.maildrop[index][0]

    def _listed(self) -> list[int]:
        assert self.maildrop is not None
        return [i for i in range(len(self.maildrop)) if i not in self.deleted]

    def do_stat(self, arg: str) -> Result:
        if self.maildrop is None:
            return self._err("not logged in")
        total = sum(len(self.maildrop[i][1]) for i in self._listed())
        return self._ok(f"{len(self._listed())} {total}")

    def do_list(self, arg: str) -> Result:
        lies = self.script.listed_sizes

        def size(i: int) -> str:
            assert self.maildrop is not None
            return str(lies.get(self.maildrop[i][0], len(self.maildrop[i][1])))

        return self._listing(arg, size)

    def do_uidl(self, arg: str) -> Result:
        if not self.script.uidl:
            return self._err("UIDL not supported")
        return self._listing(arg, lambda i: self._uid(i))

    def _listing(self, arg: str, value: Callable[[int], str]) -> Result:
        if self.maildrop is None:
            return self._err("not logged in")
        if arg:
            index = self._message(arg)
            if index is None:
                return self._err("no such message")
            return self._ok(f"{index + 1} {value(index)}")
        body = "".join(f"{i + 1} {value(i)}\r\n" for i in self._listed())
        return f"+OK listing follows\r\n{body}.\r\n".encode(), None

    def do_retr(self, arg: str) -> Result:
        index = self._message(arg)
        if index is None or self.maildrop is None:
            return self._err("no such message")
        data = self._stored(index)
        return b"+OK %d octets\r\n" % len(data) + stuff(data, self.script.dot_stuffing), None

    def do_top(self, arg: str) -> Result:
        number, _, lines = arg.partition(" ")
        index = self._message(number)
        if not self.script.top or index is None or self.maildrop is None:
            return self._err("no such message")
        data = self._stored(index)
        end = data.find(b"\r\n\r\n")
        head = data if end < 0 else data[: end + 4]
        if lines.isdigit() and int(lines) > 0 and end >= 0:
            body_lines = data[end + 4 :].split(b"\r\n")[: int(lines)]
            head += b"".join(line + b"\r\n" for line in body_lines)
        return b"+OK\r\n" + stuff(head), None

    def do_dele(self, arg: str) -> Result:
        index = self._message(arg)
        if index is None:
            return self._err("no such message")
        self.deleted.add(index)
        return self._ok(f"message {arg} deleted")

    def do_noop(self, arg: str) -> Result:
        return self._ok()

    def do_rset(self, arg: str) -> Result:
        self.deleted.clear()
        return self._ok()

    def do_quit(self, arg: str) -> Result:
        if self.maildrop is not None and self.deleted:
            gone = {id(self.maildrop[i]) for i in self.deleted}
            with self.server.lock:
                self.server.mailbox = [m for m in self.server.mailbox if id(m) not in gone]
        return b"+OK bye\r\n", self._close

    def _close(self) -> None:
        raise _Closed
