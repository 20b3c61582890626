"""A scripted IMAP server on 127.0.0.1 for tests, able to misbehave on request.

Usage::

    script = ImapScript(folders={"INBOX": Mailbox(7, [Message(1, b"Subject: a\\r\\n\\r\\nhi")])})
    with ScriptedImapServer(script) as server:          # plain; tls=ctx, implicit_tls=True
        endpoint = SourceEndpoint(Protocol.IMAP, "127.0.0.1", server.port,
                                  security=Security.NONE, timeout=1.0)
        ...
    assert "LOGIN" not in server.command_names()

It speaks enough IMAP4rev1 for a fetching client: CAPABILITY, NOOP, STARTTLS, LOGIN
(quoted strings, synchronising and ``LITERAL+`` literals), AUTHENTICATE PLAIN (with or
without SASL-IR), SELECT/EXAMINE, LIST, UID FETCH (UID, FLAGS, RFC822.SIZE,
BODY.PEEK[], BODY.PEEK[HEADER]), UID STORE (+/-FLAGS[.SILENT]), EXPUNGE, UID EXPUNGE,
CREATE, UID COPY, UID MOVE (with "MOVE" in ``extra_caps``),
CLOSE, IDLE (``DONE`` recorded among the commands; ``notify()`` and ``add_message()``
reach idling sessions) and LOGOUT. Pipelined commands are answered in order (or reordered,
see below).

Everything it does is set by an ``ImapScript`` (fields documented there): the folders
and their messages (``Mailbox``/``Message``; folder names as sent on the wire, i.e.
modified UTF-7), which capabilities it advertises, and faults: reject logins, drop the
connection after N bytes sent or on a given command, hang, send raw replies instead of
the normal answer, inject untagged lines, answer FETCH items out of order or pipelined
body fetches in reverse order, let messages vanish or be expunged mid-fetch.

Commands are matched by *prefix* of the command text after the tag, case-insensitive
(``"UID FETCH 1:*"`` is the listing, ``"UID FETCH"`` any UID FETCH, ``"LOGIN"``).
Raw replies may contain ``$TAG``, replaced by the command's tag.

What the server saw is recorded: ``commands`` (command texts after the tag, literal
contents inlined), ``received`` (every byte received, decrypted), ``sessions`` and
``errors`` (exceptions inside the server; a test can assert it is empty) and
``fetch_batches`` (how many pipelined body fetches each reordered answer covered) and
``ambiguities`` (a STORE of \\Deleted with an EXPUNGE pipelined behind it, which RFC 3501
§5.5 forbids and after which Dovecot expunges nothing). The folders'
state (flags, expunged messages) changes as a real server's would, for assertions.
"""

from __future__ import annotations

import base64
import contextlib
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhaul.domain.imap_utf7 import encode_mailbox
from support.scripted_oauth import GMAIL_CHALLENGE, OAuthLogin, read_response

COURIER_PLACEHOLDER = (
    b"From: System Administrator <root@localhost>\r\n"
    b"Subject: message unavailable\r\n"
    b"\r\n"
    b"This message is no longer available on the server.\r\n"
)
"""What Courier-IMAP sends for a message another session expunged."""

_ATOM = re.compile(rb'"((?:[^"\\]|\\.)*)"|\(|\)|[^\s()"]+')
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}$")


@dataclass
class Message:
    """One stored message: its UID, exact bytes and flags (like ``\\Seen``)."""

    uid: int
    body: bytes
    flags: set[str] = field(default_factory=set)
    gm_msgid: int | None = None  # Gmail's X-GM-MSGID (one per message, whatever the label)

    def header(self) -> bytes:
        """The header section through the blank line (the whole message if none)."""
        for sep in (b"\r\n\r\n", b"\n\n"):
            end = self.body.find(sep)
            if end >= 0:
                return self.body[: end + len(sep)]
        return self.body


@dataclass
class Mailbox:
    """A folder: its UIDVALIDITY and messages (kept sorted by UID)."""

    uidvalidity: int = 1
    messages: list[Message] = field(default_factory=list)
    attributes: str = "\\HasNoChildren"  # what LIST says of it (e.g. "\\All", "\\Noselect")

    def uids(self, uid_set: str) -> list[tuple[int, Message]]:
        """(sequence number, message) for each message named by a UID set like ``1:5,9:*``."""
        top = max((m.uid for m in self.messages), default=0)
        ranges = []
        for part in uid_set.split(","):
            low, _, high = part.partition(":")
            first = top if low == "*" else int(low)
            last = first if not high else top if high == "*" else int(high)
            ranges.append((min(first, last), max(first, last)))
        return [
            (seq, m)
            for seq, m in enumerate(self.messages, 1)
            if any(lo <= m.uid <= hi for lo, hi in ranges)
        ]


@dataclass
class ImapScript:
    """What a ``ScriptedImapServer`` does. Defaults: a well-behaved Dovecot-like server."""

    username: str = "user"
    password: str = "secret"
    folders: dict[str, Mailbox] = field(default_factory=lambda: {"INBOX": Mailbox()})
    starttls: bool = False  # advertise STARTTLS (needs the server's tls context)
    uidplus: bool = True
    literal_plus: bool = False
    logindisabled: bool = False
    auth_plain: bool = False
    sasl_ir: bool = False
    extra_caps: tuple[str, ...] = ()
    caps_in_greeting: bool = True
    caps_after_login: bool = True  # put [CAPABILITY ...] in the LOGIN OK
    greeting: bytes | None = None  # a whole greeting line instead of "* OK [...] ready"
    login_failure: bytes = b"NO [AUTHENTICATIONFAILED] Authentication failed."
    drop_after_bytes: int | None = None  # close once this many bytes were sent (per session)
    drop_at: str | None = None  # close the connection on receiving this command
    hang_at: str | None = None  # stop answering (until the server stops) at this command
    replies: dict[str, bytes] = field(default_factory=dict)  # command prefix → raw answer
    inject: dict[str, bytes] = field(default_factory=dict)  # prefix → raw lines sent first
    inject_after_body: bytes = b""  # raw lines sent after every body FETCH response
    uid_last: bool = False  # send UID after BODY[] in body FETCH responses
    omit_uid: bool = False  # send no UID item in body FETCH responses
    reorder: bool = False  # answer body fetches that arrive together in reverse order
    vanish: set[int] = field(default_factory=set)  # UIDs whose body fetch returns no data
    refuse: set[int] = field(default_factory=set)  # UIDs whose body fetch answers NO
    body_nil: set[int] = field(default_factory=set)  # UIDs sent as BODY[] NIL
    body_quoted: set[int] = field(default_factory=set)  # UIDs sent as a quoted string
    expunge_at_fetch: set[int] = field(default_factory=set)  # expunged (announced) mid-fetch
    racy_expunge: bool = True  # like Dovecot: an EXPUNGE pipelined behind the STORE of
    # \Deleted (sent before that STORE's completion) does not see the flag; see ambiguities
    truncate: dict[int, int] = field(default_factory=dict)  # UID → octets of BODY[] sent
    # (the listing still gives the whole RFC822.SIZE)
    placeholder: set[int] = field(default_factory=set)  # UIDs expunged by "another
    # session": in this session's view still listed, but a body fetch gets Courier's
    # "message unavailable" placeholder; once served, gone from every later SELECT
    seq_offset: int = 0  # body FETCH responses name a sequence number off by this much
    listing_pace: float = 0.0  # seconds between two lines of a flag/size listing (a slow
    # server listing a big folder)
    oauth: tuple[str, ...] = ()  # AUTH= mechanisms offered for OAuth2: XOAUTH2, OAUTHBEARER
    token: str = ""  # the access token it takes (with ``username``); others get Gmail's
    # error challenge, then NO [AUTHENTICATIONFAILED]
    token_check: Callable[[str], bool] | None = None  # asks an authorization server instead
    utf8_accept: bool = False  # advertise UTF8=ACCEPT and answer ENABLE (RFC 6855); folder
    # names then arrive in UTF-8 and are looked up in their modified UTF-7 form
    idle: bool = True  # advertise IDLE (RFC 2177); ``notify()`` talks to idling sessions
    idle_silent: bool = False  # a DONE ending an IDLE is never answered (a dead peer)


class _Closed(Exception):
    """The session ends (client left, drop or hang finished)."""


class ScriptedImapServer:
    """Serves an ``ImapScript`` on 127.0.0.1:``port``, one thread per connection."""

    def __init__(
        self,
        script: ImapScript | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.script = script or ImapScript()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.commands: list[str] = []
        self.oauth_logins: list[OAuthLogin] = []
        self.received = bytearray()
        self.errors: list[BaseException] = []
        self.sessions = 0
        self.fetch_batches: list[int] = []  # body fetches answered together (reorder)
        self.ambiguities: list[str] = []  # commands pipelined against RFC 3501 §5.5
        self.placeholders_served: set[int] = set()
        self.idlers: list[_Session] = []  # sessions in IDLE now
        self.stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> ScriptedImapServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def notify(self, raw: bytes, bye: bool = False) -> int:
        """Send ``raw`` (untagged lines) to every idling session, then with ``bye`` end
        them; how many were idling."""
        with self._lock:
            idlers = list(self.idlers)
        for session in idlers:
            with contextlib.suppress(OSError):
                session.send(raw)
                if bye:
                    session.sock.shutdown(socket.SHUT_RDWR)
        return len(idlers)

    def idlers_on(self, folder: str) -> int:
        """How many sessions idle with ``folder`` selected."""
        box = self.script.folders[folder]
        with self._lock:
            return sum(1 for session in self.idlers if session.folder is box)

    def add_to(self, message: Message, folder: str) -> int:
        """Store ``message`` in ``folder`` and tell only the sessions idling there (``* n
        EXISTS``, as a real server does); how many were."""
        box = self.script.folders[folder]
        box.messages.append(message)
        with self._lock:
            idlers = [session for session in self.idlers if session.folder is box]
        for session in idlers:
            with contextlib.suppress(OSError):
                session.send(b"* %d EXISTS\r\n* 1 RECENT\r\n" % len(box.messages))
        return len(idlers)

    def add_message(self, message: Message, folder: str = "INBOX") -> int:
        """Store ``message`` as new mail and tell idling sessions (``* n EXISTS``)."""
        box = self.script.folders[folder]
        box.messages.append(message)
        return self.notify(b"* %d EXISTS\r\n* 1 RECENT\r\n" % len(box.messages))

    def command_names(self) -> list[str]:
        """The first word of each command received (``UID FETCH`` counts as ``UID``)."""
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.append(sock)
            self.sessions += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        session = _Session(self, sock)
        try:
            session.run()
        except (_Closed, OSError):
            pass
        except Exception as exc:  # a bug in the server or a test's script
            self.errors.append(exc)
        finally:
            session.close()


class _Session:
    def __init__(self, server: ScriptedImapServer, sock: socket.socket) -> None:
        self.server = server
        self.script = server.script
        self.sock: socket.socket = sock
        self.buf = bytearray()
        self.sent = 0
        self.tls_active = False
        self.folder: Mailbox | None = None
        self.received_total = 0  # bytes received in this session
        self.command_start = 0  # stream offset where the command being handled began
        self.utf8 = False  # ENABLE UTF8=ACCEPT was accepted
        self.deleted_marks: dict[int, int] = {}  # UID → bytes the client had sent when
        # the completion of the STORE that set its \Deleted went out

    # I/O ---------------------------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        limit = self.script.drop_after_bytes
        if limit is not None and self.sent + len(data) >= limit:
            self.sock.sendall(data[: max(0, limit - self.sent)])
            raise _Closed
        self.sock.sendall(data)
        self.sent += len(data)

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buf += data
        self.received_total += len(data)
        self.server.received += data

    def readable_soon(self, wait: float = 0.05) -> bool:
        """Whether more client bytes are buffered or arrive within ``wait`` seconds."""
        if b"\n" in self.buf:
            return True
        pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        return pending > 0 or bool(select.select([self.sock], [], [], wait)[0])

    def readline(self) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            self._recv()
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._recv()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def read_command(self) -> tuple[str, str, list[bytes]]:
        """Tag, command text (literals inlined) and the tokens after the command name."""
        self.command_start = self.received_total - len(self.buf)
        line = self.readline().rstrip(b"\r\n")
        text, tokens = b"", []
        while (match := _LITERAL.search(line)) is not None:
            head = line[: match.start()]
            tokens += _tokens(head)
            if not match.group(2):
                self.send(b"+ Ready for literal data\r\n")
            literal = self.read_exact(int(match.group(1)))
            tokens.append(literal)
            text += head + literal
            line = self.readline().rstrip(b"\r\n")
        tokens += _tokens(line)
        text += line
        tag, _, rest = text.decode("latin-1").partition(" ")
        words = 2 if tokens[1:2] and tokens[1].upper() == b"UID" else 1
        return tag, rest, tokens[1 + words :]

    # the conversation --------------------------------------------------------------------
    def caps(self) -> str:
        s = self.script
        caps = ["IMAP4rev1", "ID", "ENABLE"] + (["IDLE"] if s.idle else [])
        caps += ["STARTTLS"] if s.starttls and not self.tls_active else []
        caps += ["LOGINDISABLED"] if s.logindisabled else []
        caps += ["AUTH=PLAIN"] if s.auth_plain else []
        caps += [f"AUTH={mechanism}" for mechanism in s.oauth]
        caps += ["SASL-IR"] if s.sasl_ir else []
        caps += ["UIDPLUS"] if s.uidplus else []
        caps += ["LITERAL+"] if s.literal_plus else []
        caps += ["UTF8=ACCEPT"] if s.utf8_accept else []
        return " ".join(caps + list(s.extra_caps))

    def run(self) -> None:
        if self.server.implicit_tls:
            assert self.server.tls is not None
            self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
            self.tls_active = True
        code = f"[CAPABILITY {self.caps()}] " if self.script.caps_in_greeting else ""
        self.send(self.script.greeting or f"* OK {code}Scripted IMAP ready.\r\n".encode())
        while True:
            tag, text, args = self.read_command()
            self.server.commands.append(text)
            self.dispatch(tag, text, args)

    def matches(self, prefix: str | None, text: str) -> bool:
        return prefix is not None and text.upper().startswith(prefix.upper())

    def dispatch(self, tag: str, text: str, args: list[bytes]) -> None:
        s = self.script
        if self.matches(s.drop_at, text):
            raise _Closed
        if self.matches(s.hang_at, text):
            self.server.stopping.wait(30)
            raise _Closed
        for prefix, raw in s.inject.items():
            if self.matches(prefix, text):
                self.send(raw)
        for prefix, raw in s.replies.items():
            if self.matches(prefix, text):
                self.send(raw.replace(b"$TAG", tag.encode()))
                return
        words = text.upper().split()
        name = " ".join(words[:2]) if words[:1] == ["UID"] else (words or [""])[0]
        handler = getattr(self, "do_" + name.replace(" ", "_"), None)
        if handler is None:
            self.send(f"{tag} BAD Unknown command\r\n".encode())
            return
        handler(tag, text, args)

    def ok(self, tag: str, text: str = "Completed") -> None:
        self.send(f"{tag} OK {text}\r\n".encode())

    def do_CAPABILITY(self, tag: str, text: str, args: list[bytes]) -> None:
        self.send(f"* CAPABILITY {self.caps()}\r\n".encode())
        self.ok(tag)

    def do_NOOP(self, tag: str, text: str, args: list[bytes]) -> None:
        self.ok(tag)

    def do_LOGOUT(self, tag: str, text: str, args: list[bytes]) -> None:
        self.send(b"* BYE Logging out\r\n")
        self.ok(tag)
        raise _Closed

    def do_STARTTLS(self, tag: str, text: str, args: list[bytes]) -> None:
        if not self.script.starttls or self.server.tls is None or self.tls_active:
            self.send(f"{tag} BAD STARTTLS not available\r\n".encode())
            return
        self.ok(tag, "Begin TLS negotiation now.")
        self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
        self.tls_active = True

    def _logged_in(self, tag: str, user: bytes, password: bytes) -> None:
        s = self.script
        if user.decode("utf-8", "replace") != s.username or password != s.password.encode():
            self.send(tag.encode() + b" " + s.login_failure + b"\r\n")
            return
        code = f"[CAPABILITY {self.caps()}] " if s.caps_after_login else ""
        self.ok(tag, f"{code}Logged in")

    def do_LOGIN(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.script.logindisabled:
            self.send(f"{tag} NO [PRIVACYREQUIRED] LOGIN is disabled\r\n".encode())
        elif len(args) != 2:
            self.send(f"{tag} BAD LOGIN needs two arguments\r\n".encode())
        else:
            self._logged_in(tag, args[0], args[1])

    def do_AUTHENTICATE(self, tag: str, text: str, args: list[bytes]) -> None:
        mechanism = args[0].upper().decode("ascii", "replace") if args else ""
        if mechanism in ("XOAUTH2", "OAUTHBEARER") and self.script.oauth:
            self._authenticate_oauth(tag, mechanism, args[1] if len(args) > 1 else None)
            return
        if not self.script.auth_plain or not args or args[0].upper() != b"PLAIN":
            self.send(f"{tag} NO Unsupported mechanism\r\n".encode())
            return
        if len(args) > 1:
            token = args[1]
        else:
            self.send(b"+ \r\n")
            token = self.readline().strip()
            self.server.commands.append(token.decode("latin-1"))
        try:
            _, user, password = base64.b64decode(token, validate=True).split(b"\0")
        except ValueError:
            self.send(f"{tag} BAD Invalid SASL response\r\n".encode())
            return
        self._logged_in(tag, user, password)

    def _authenticate_oauth(self, tag: str, mechanism: str, initial: bytes | None) -> None:
        if initial is None:
            self.send(b"+ \r\n")
            initial = self.readline().strip()
            self.server.commands.append(initial.decode("latin-1"))
        login = read_response(mechanism, initial.decode("latin-1"))
        if login is None:
            self.send(f"{tag} BAD Invalid SASL argument\r\n".encode())
            return
        self.server.oauth_logins.append(login)
        s = self.script
        valid = s.token_check(login.token) if s.token_check else login.token == s.token
        if valid and login.user == s.username:
            self._logged_in(tag, login.user.encode(), s.password.encode())
            return
        self.send(f"+ {GMAIL_CHALLENGE}\r\n".encode())
        self.server.commands.append(self.readline().strip().decode("latin-1"))
        self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n".encode())

    def do_ENABLE(self, tag: str, text: str, args: list[bytes]) -> None:
        wanted = {arg.decode().upper() for arg in args}
        if self.script.utf8_accept and "UTF8=ACCEPT" in wanted:
            self.utf8 = True
            self.send(b"* ENABLED UTF8=ACCEPT\r\n")
        self.ok(tag, "Enabled")

    def do_SELECT(self, tag: str, text: str, args: list[bytes]) -> None:
        name = args[0].decode("latin-1") if args else ""
        if self.utf8 and args:
            name = encode_mailbox(args[0].decode("utf-8"))
        folder = self.script.folders.get(name)
        if folder is None:
            self.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {name}\r\n".encode())
            return
        gone = self.script.placeholder & self.server.placeholders_served
        if gone:  # the other session's expunge shows in a fresh view
            folder.messages[:] = [m for m in folder.messages if m.uid not in gone]
        self.folder = folder
        top = max((m.uid for m in folder.messages), default=0)
        self.send(
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Ok\r\n"
            + f"* {len(folder.messages)} EXISTS\r\n* 0 RECENT\r\n".encode()
            + f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid\r\n".encode()
            + f"* OK [UIDNEXT {top + 1}] Predicted next UID\r\n".encode()
        )
        self.ok(tag, "[READ-WRITE] Select completed")

    do_EXAMINE = do_SELECT

    def do_IDLE(self, tag: str, text: str, args: list[bytes]) -> None:
        with self.server._lock:
            self.server.idlers.append(self)
        try:
            self.send(b"+ idling\r\n")
            line = self.readline()
        finally:
            with self.server._lock:
                self.server.idlers.remove(self)
        self.server.commands.append(line.decode("latin-1").strip())
        if self.script.idle_silent:
            self.server.stopping.wait(30)
            raise _Closed
        self.ok(tag, "Idle completed")

    def do_LIST(self, tag: str, text: str, args: list[bytes]) -> None:
        pattern = args[1].decode("latin-1") if len(args) > 1 else "*"
        for name in self.script.folders:
            if "*" not in pattern and "%" not in pattern and name != pattern:
                continue  # a plain name lists that folder only
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            attributes = self.script.folders[name].attributes
            self.send(f'* LIST ({attributes}) "/" "{quoted}"\r\n'.encode())
        self.ok(tag)

    def do_CREATE(self, tag: str, text: str, args: list[bytes]) -> None:
        name = args[0].decode("latin-1") if args else ""
        if not name or name in self.script.folders:
            self.send(f"{tag} NO [ALREADYEXISTS] Mailbox exists\r\n".encode())
            return
        self.script.folders[name] = Mailbox()
        self.ok(tag, "Create completed")

    def _copy(self, args: list[bytes]) -> bool:
        """Copy the named messages of the selected folder; False if there is no target."""
        target = self.script.folders.get(args[1].decode("latin-1")) if len(args) > 1 else None
        if self.folder is None or target is None:
            return False
        for _, message in self.folder.uids(args[0].decode()):
            top = max((m.uid for m in target.messages), default=0)
            target.messages.append(Message(top + 1, message.body, set(message.flags)))
        return True

    def do_UID_COPY(self, tag: str, text: str, args: list[bytes]) -> None:
        if not self._copy(args):
            self.send(f"{tag} NO [TRYCREATE] No such mailbox\r\n".encode())
            return
        self.ok(tag, "Copy completed")

    def do_UID_MOVE(self, tag: str, text: str, args: list[bytes]) -> None:
        if "MOVE" not in self.script.extra_caps:
            self.send(f"{tag} BAD Unknown command\r\n".encode())
            return
        if not self._copy(args):
            self.send(f"{tag} NO [TRYCREATE] No such mailbox\r\n".encode())
            return
        assert self.folder is not None
        chosen = {m.uid for _, m in self.folder.uids(args[0].decode())}
        self._expunge(lambda m: m.uid in chosen)
        self.ok(tag, "Move completed")

    def do_UID_FETCH(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.folder is None:
            self.send(f"{tag} BAD No mailbox selected\r\n".encode())
            return
        if "BODY.PEEK[]" not in text.upper():
            for seq, message in self.folder.uids(args[0].decode()):
                self.send(self._fetch_line(seq, message, text.upper()))
                if self.script.listing_pace:
                    time.sleep(self.script.listing_pace)
            self.ok(tag)
            return
        batch = [(tag, args[0].decode())]
        while self.script.reorder and self.readable_soon():
            next_tag, next_text, next_args = self.read_command()
            self.server.commands.append(next_text)
            if "BODY.PEEK[]" not in next_text.upper():
                raise AssertionError(f"reorder expects only body fetches, got {next_text}")
            batch.append((next_tag, next_args[0].decode()))
        if self.script.expunge_at_fetch:
            self._expunge(lambda m: m.uid in self.script.expunge_at_fetch)
            self.script.expunge_at_fetch = set()
        self.server.fetch_batches.append(len(batch))
        order = list(reversed(batch)) if self.script.reorder else batch
        results: dict[str, str] = {}
        for fetch_tag, uid_set in order:
            results[fetch_tag] = self._send_bodies(uid_set)
        for fetch_tag, _ in batch:
            self.send(f"{fetch_tag} {results[fetch_tag]}\r\n".encode())

    def _send_bodies(self, uid_set: str) -> str:
        assert self.folder is not None
        s = self.script
        status = "OK Fetch completed"
        for seq, message in self.folder.uids(uid_set):
            if message.uid in s.vanish:
                continue
            if message.uid in s.refuse:
                status = "NO Some messages could not be fetched"
                continue
            uid = b"" if s.omit_uid else b"UID %d" % message.uid
            if message.uid in s.body_nil:
                self.send(b"* %d FETCH (%s BODY[] NIL)\r\n" % (seq, uid))
                continue
            if message.uid in s.body_quoted:
                quoted = message.body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                self.send(b'* %d FETCH (%s BODY[] "%s")\r\n' % (seq, uid, quoted))
                continue
            before = uid + b" " if uid and not s.uid_last else b""
            after = b" " + uid if uid and s.uid_last else b""
            body = message.body[: s.truncate.get(message.uid, len(message.body))]
            if message.uid in s.placeholder:
                body = COURIER_PLACEHOLDER
                self.server.placeholders_served.add(message.uid)
            seq += s.seq_offset
            self.send(b"* %d FETCH (%sBODY[] {%d}\r\n" % (seq, before, len(body)))
            self.send(body)
            self.send(after + b")\r\n")
            self.send(s.inject_after_body)
        return status

    def _fetch_line(self, seq: int, message: Message, items: str) -> bytes:
        parts = [f"UID {message.uid}"]
        if "FLAGS" in items:
            parts.append(f"FLAGS ({' '.join(sorted(message.flags))})")
        if "RFC822.SIZE" in items:
            parts.append(f"RFC822.SIZE {len(message.body)}")
        if "X-GM-MSGID" in items and message.gm_msgid is not None:
            parts.append(f"X-GM-MSGID {message.gm_msgid}")
        head = f"* {seq} FETCH ({' '.join(parts)}".encode()
        if "BODY.PEEK[HEADER]" in items:
            header = message.header()
            return head + b" BODY[HEADER] {%d}\r\n" % len(header) + header + b")\r\n"
        return head + b")\r\n"

    def do_UID_STORE(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.folder is None or len(args) < 2:
            self.send(f"{tag} BAD No mailbox selected or bad arguments\r\n".encode())
            return
        mode = args[1].decode().upper()
        flags = {a.decode() for a in args[2:] if a not in (b"(", b")")}
        for seq, message in self.folder.uids(args[0].decode()):
            if mode.startswith("+"):
                message.flags |= flags
            elif mode.startswith("-"):
                message.flags -= flags
            else:
                message.flags = set(flags)
            if not mode.endswith(".SILENT"):
                line = f"* {seq} FETCH (UID {message.uid} FLAGS ({' '.join(message.flags)}))"
                self.send(line.encode() + b"\r\n")
        if "\\Deleted" in flags and mode.startswith("+"):
            pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            while pending or select.select([self.sock], [], [], 0)[0]:
                self._recv()  # all the client sent before it could see this completion
                pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            for _, message in self.folder.uids(args[0].decode()):
                self.deleted_marks[message.uid] = self.received_total
        self.ok(tag, "Store completed")

    def _unseen_deletions(self, text: str, uids: set[int] | None = None) -> set[int]:
        """UIDs whose \\Deleted this EXPUNGE must not see (sent before the STORE was done)."""
        considered = set(self.deleted_marks) if uids is None else uids & set(self.deleted_marks)
        unseen = {uid for uid in considered if self.command_start < self.deleted_marks[uid]}
        for uid in considered:
            del self.deleted_marks[uid]
        if not unseen:
            return set()
        self.server.ambiguities.append(f"{text} was pipelined behind the STORE of \\Deleted")
        return unseen if self.script.racy_expunge else set()

    def _expunge(self, chosen: Callable[[Message], bool]) -> None:
        assert self.folder is not None
        while True:
            victims = [m for m in self.folder.messages if chosen(m)]
            if not victims:
                return
            seq = self.folder.messages.index(victims[0]) + 1
            del self.folder.messages[seq - 1]
            self.send(f"* {seq} EXPUNGE\r\n".encode())

    def do_EXPUNGE(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.folder is None:
            self.send(f"{tag} BAD No mailbox selected\r\n".encode())
            return
        unseen = self._unseen_deletions(text)
        self._expunge(lambda m: "\\Deleted" in m.flags and m.uid not in unseen)
        self.ok(tag, "Expunge completed")

    def do_UID_EXPUNGE(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.folder is None or not self.script.uidplus:
            self.send(f"{tag} BAD UID EXPUNGE not available\r\n".encode())
            return
        chosen = {m.uid for _, m in self.folder.uids(args[0].decode())}
        unseen = self._unseen_deletions(text, chosen)
        self._expunge(lambda m: m.uid in chosen and "\\Deleted" in m.flags and m.uid not in unseen)
        self.ok(tag, "Expunge completed")

    def do_CLOSE(self, tag: str, text: str, args: list[bytes]) -> None:
        if self.folder is not None:
            kept = [m for m in self.folder.messages if "\\Deleted" not in m.flags]
            self.folder.messages[:] = kept
        self.folder = None
        self.ok(tag, "Close completed")


def _tokens(data: bytes) -> list[bytes]:
    tokens = []
    for match in _ATOM.finditer(data):
        quoted = match.group(1)
        if quoted is not None:
            tokens.append(re.sub(rb"\\(.)", rb"\1", quoted))
        else:
            tokens.append(match.group(0))
    return tokens
