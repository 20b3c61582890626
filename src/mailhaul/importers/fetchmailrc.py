"""`mailhaul import fetchmailrc`: fetchmail's run-control grammar, mapped to mailhaul accounts.

Each ``poll``/``skip`` entry with its ``user`` descriptions becomes one account per user;
``defaults`` sets options for the entries after it. Whatever mailhaul cannot honour is kept
as a note naming its line (``mda``, ``preconnect``, ``plugin`` …); a multidrop user (several
local names, ``*`` or ``=`` mappings) cannot be mapped to one destination and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import (
    KEEP_FETCHALL_NOTE,
    OAUTH2_NOTE,
    STARTTLS_NOTE,
    ImportedAccount,
    ImportFileError,
    ImportProblem,
    ParseResult,
)
from mailhaul.importers.fetchmailrc_folders import folder_name
from mailhaul.importers.fetchmailrc_lex import Token, tokenize, words

_VALUE = words(
    "via protocol port service auth timeout idletimeout qvirtual interface monitor plugin "
    "plugout interval principal esmtpname esmtppassword bad-header password sslcert sslkey "
    "sslproto sslcertfile sslcertpath sslcommonname sslfingerprint smtpaddress smtpname mda "
    "bsmtp preconnect postconnect limit warnings batchlimit fetchlimit fetchsizelimit "
    "fastuidl expunge properties"
)
_NUMERIC = words(
    "port timeout idletimeout interval limit warnings batchlimit fetchlimit fetchsizelimit "
    "fastuidl expunge"
)
_LIST = words("localdomains aka folder smtphost fetchdomains antispam")
_FLAGS = words(
    "dns checkalias uidl tracepolls ssl sslcertck keep flush limitflush fetchall rewrite "
    "forcecr stripcr pass8bits dropstatus dropdelivered mimedecode idle forceidle lmtp"
)
_UNSUPPORTED = {
    "mda": "mailhaul delivers into the destination's Maildir itself, not through an MDA",
    "bsmtp": "mailhaul delivers into the destination's Maildir, not to a BSMTP file",
    "lmtp": "mailhaul delivers into the destination's Maildir, not over LMTP",
    "smtphost": "mailhaul delivers into the destination's Maildir, not over SMTP",
    "smtpaddress": "mailhaul delivers into the destination's Maildir, not over SMTP",
    "smtpname": "mailhaul delivers into the destination's Maildir, not over SMTP",
    "antispam": "there is no SMTP listener whose spam answers could be honoured",
    "preconnect": "mailhaul runs no commands before connecting",
    "postconnect": "mailhaul runs no commands after connecting",
    "plugin": "mailhaul connects directly (no plugin command)",
    "plugout": "mailhaul runs no listener plugin",
    "interface": "mailhaul does not check interfaces before polling",
    "monitor": "mailhaul does not monitor interfaces for activity",
    "sslcert": "client certificates are not supported",
    "sslkey": "client certificates are not supported",
    "sslcommonname": "the certificate is checked against the host name",
    "sslfingerprint": "the certificate is checked against its CA chain, not a fingerprint",
    "sslcertpath": "mailhaul takes one CA file (--ca-file); the system CAs are used",
    "limitflush": "oversized messages are left on the server and named in the run log",
    "dropdelivered": "mailhaul keeps the message as the server sent it",
    "mimedecode": "mailhaul keeps the message as the server sent it",
    "localdomains": "multidrop options have no meaning for a single destination",
    "aka": "multidrop options have no meaning for a single destination",
    "envelope": "multidrop options have no meaning for a single destination",
    "qvirtual": "multidrop options have no meaning for a single destination",
    "fetchdomains": "multidrop options have no meaning for a single destination",
}
_SERVICES = {"pop3": 110, "pop3s": 995, "imap": 143, "imap2": 143, "imaps": 993}


@dataclass
class _Opt:
    value: object
    line: int


@dataclass
class _User:
    line: int
    remote: str | None = None
    locals_: list[str] = field(default_factory=list)
    multidrop_line: int = 0
    opts: dict[str, _Opt] = field(default_factory=dict)


@dataclass
class _Entry:
    line: int
    name: str
    active: bool
    opts: dict[str, _Opt] = field(default_factory=dict)
    users: list[_User] = field(default_factory=list)


class _Parser:
    def __init__(self, tokens: list[Token], file: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.file = file
        self.daemon: int | None = None
        self.quirks: list[Token] = []

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1].line if self.tokens else 0
            raise ImportFileError(self.file, last, f"the file ends where {what} was expected")
        self.pos += 1
        if token.quirk:
            self.quirks.append(token)
        return token

    def error(self, token: Token, message: str) -> ImportFileError:
        return ImportFileError(self.file, token.line, message)

    def parse(self) -> tuple[dict[str, _Opt], list[_Entry]]:
        defaults: dict[str, _Opt] = {}
        entries: list[_Entry] = []
        while (token := self.peek()) is not None:
            self.pos += 1
            if token.kind == "keyword" and token.value == "set":
                self.parse_set()
            elif token.kind == "keyword" and token.value == "defaults":
                entry = _Entry(token.line, "defaults", True)
                self.parse_entry(entry)
                for user in entry.users:
                    raise self.error(Token("", "", user.line), "`defaults` cannot name a user")
                defaults |= entry.opts
            elif token.kind == "keyword" and token.value in ("poll", "skip"):
                name = self.take("a server name")
                if name.kind not in ("string", "number", "proto"):
                    raise self.error(name, f"expected a server name after {token.value}")
                entry = _Entry(token.line, name.value, token.value == "poll")
                entry.opts = dict(defaults)
                self.parse_entry(entry)
                entries.append(entry)
            else:
                raise self.error(
                    token, f"unexpected {token.value!r}: expected poll, skip, defaults or set"
                )
        return defaults, entries

    def parse_set(self) -> None:
        negated = False
        token = self.take("a global option")
        if token.kind == "keyword" and token.value == "no":
            negated, token = True, self.take("a global option")
        if token.value == "daemon":
            self.daemon = self.take("seconds").number if not negated else None
        elif token.value in ("postmaster", "logfile", "idfile", "pidfile", "properties"):
            self.take(f"a value for {token.value}")
        elif token.kind != "keyword":
            raise self.error(token, f"unknown global option {token.value!r}")

    def parse_entry(self, entry: _Entry) -> None:
        target = entry.opts
        user: _User | None = None
        while (token := self.peek()) is not None:
            if token.kind == "keyword" and token.value in ("poll", "skip", "defaults", "set"):
                return
            self.pos += 1
            if token.kind == "keyword" and token.value == "user":
                name = self.take("a user name")
                user = _User(token.line, opts=dict(entry.opts))
                here = self.consume_marker()
                if here:
                    user.locals_.append(name.value)
                else:
                    user.remote = name.value
                entry.users.append(user)
                target = user.opts
            elif token.kind == "keyword" and token.value in ("is", "to"):
                if user is None:
                    raise self.error(token, f"`{token.value}` before any `user`")
                self.parse_local_names(user, token)
            elif token.kind == "keyword" and token.value in ("here", "there"):
                continue
            else:
                self.parse_option(token, target)

    def consume_marker(self) -> bool:
        token = self.peek()
        if token is not None and token.kind == "keyword" and token.value in ("here", "there"):
            self.pos += 1
            return token.value == "here"
        return False

    def parse_local_names(self, user: _User, keyword: Token) -> None:
        names: list[str] = []
        while (token := self.peek()) is not None and token.kind in ("string", "number", "map"):
            self.take("a local name")
            if token.kind == "map":
                user.multidrop_line = token.line
                self.take("a local name after =")
                continue
            names.append(token.value)
        if not names:
            raise self.error(keyword, f"`{keyword.value}` needs at least one name")
        if self.consume_marker() or user.remote is not None:
            user.locals_.extend(names)
        else:  # `user x here is y there`: y is the remote name
            user.remote = names[0]
            user.locals_.extend(names[1:])

    def parse_option(self, token: Token, target: dict[str, _Opt]) -> None:
        if token.kind == "proto":
            raise self.error(token, f"{token.value!r} without `proto` before it")
        if token.kind != "keyword":
            raise self.error(token, f"unexpected {token.value!r}: not a fetchmail option")
        word = token.value
        if word == "no":
            flag = self.take("an option after `no`")
            if flag.value not in _FLAGS and flag.value not in ("envelope", "bouncemail"):
                raise self.error(flag, f"`no {flag.value}` is not a fetchmail option")
            target[flag.value] = _Opt(False, flag.line)
        elif word in _FLAGS:
            target[word] = _Opt(True, token.line)
        elif word in ("sdps", "kpop"):
            target["protocol"] = _Opt(word, token.line)
        elif word == "protocol":
            value = self.take("a protocol")
            if value.kind not in ("proto", "keyword", "string"):
                raise self.error(value, "expected a protocol name after proto")
            target["protocol"] = _Opt(value.value.lower(), token.line)
        elif word in _VALUE:
            value = self.take(f"a value for {word}")
            if word in _NUMERIC and value.kind != "number":
                raise self.error(value, f"`{word}` needs a number, not {value.value!r}")
            if value.kind == "keyword" and word not in ("auth", "bad-header"):
                raise self.error(value, f"`{word}` needs a value, not the keyword {value.value!r}")
            target[word] = _Opt(value.value, token.line)
        elif word in _LIST:
            values: list[str] = []
            while (nxt := self.peek()) is not None and nxt.kind in ("string", "number"):
                values.append(self.take("a name").value)
            if not values:
                raise self.error(token, f"`{word}` needs at least one value")
            target[word] = _Opt(tuple(values), token.line)
        elif word == "envelope":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "number":
                self.take("a number")
            target[word] = _Opt(self.take("a header name").value, token.line)
        else:
            raise self.error(token, f"`{word}` is not allowed here")


def parse_fetchmailrc(text: str, file: str) -> ParseResult:
    """Accounts of a fetchmailrc; ImportFileError (with the line) on a syntax error."""
    parser = _Parser(tokenize(text, file), file)
    _defaults, entries = parser.parse()
    result = ParseResult()
    for token in parser.quirks:
        result.global_notes.append(f"{file}:{token.line}: {token.quirk}")
    for entry in entries:
        if not entry.users:
            result.problems.append(_problem(file, entry.line, entry.name))
            continue
        for user in entry.users:
            result.accounts.append(_account(file, entry, user, parser.daemon))
    return result


def _problem(file: str, line: int, name: str) -> ImportProblem:
    return ImportProblem(
        file, line, f"poll {name}: no `user` named (fetchmail would use the local login name)"
    )


def _protocol(value: str, port: int | None) -> Protocol | str:
    """The protocol, or why it cannot be imported."""
    if value in ("pop3", "apop"):
        return Protocol.POP3
    if value == "imap":
        return Protocol.IMAP
    if value == "auto" and port in (110, 995):
        return Protocol.POP3
    if value == "auto" and port in (143, 993):
        return Protocol.IMAP
    if value == "auto":
        return "no protocol named (fetchmail would guess): add `proto pop3` or `proto imap`"
    return f"protocol {value.upper()} is not supported (only POP3 and IMAP)"


def _account(file: str, entry: _Entry, user: _User, daemon: int | None) -> ImportedAccount:
    opts = user.opts
    get = opts.get

    def value(name: str) -> str | None:
        opt = get(name)
        return None if opt is None else str(opt.value)

    def flag(name: str, default: bool = False) -> bool:
        opt = get(name)
        return default if opt is None else bool(opt.value)

    port: int | None = None
    for name in ("port", "service"):
        if (raw := value(name)) is not None:
            port = int(raw) if raw.isdigit() else _SERVICES.get(raw.lower())
    proto = _protocol(value("protocol") or "auto", port)
    account = ImportedAccount(
        file=file,
        line=user.line,
        protocol=proto if isinstance(proto, Protocol) else Protocol.POP3,
        host=value("via") or entry.name,
        username=user.remote or "",
        password=value("password"),
        active=entry.active,
    )
    if not isinstance(proto, Protocol):
        account.skip = proto
    if not user.remote:
        account.skip = "no remote user name"
    if (raw := value("service")) is not None and port is None:
        account.skip = f"service {raw!r} is not a port number or a known mail service"
    if value("protocol") == "apop":
        account.note(opts["protocol"].line, "APOP: mailhaul logs in with USER/PASS over TLS")
    if value("protocol") == "auto" and account.skip is None:
        account.note(entry.line, f"no protocol named; {account.protocol} assumed from the port")
    if not entry.active:
        account.note(entry.line, "a `skip` entry: imported switched off")
    if (auth := (value("auth") or "").lower()) in ("xoauth2", "oauthbearer"):
        account.oauth2, account.password = True, None  # fetchmail's password is the token
        account.note(opts["auth"].line, f"auth {auth}: {OAUTH2_NOTE}")
    if account.password is None and not account.oauth2:
        account.skip = account.skip or "no password (fetchmail would ask or read ~/.netrc)"
    _map_security(account, opts, port)
    account.port = port
    account.keep, account.fetchall, account.flush = flag("keep"), flag("fetchall"), flag("flush")
    if account.keep and account.fetchall:
        account.note(opts["fetchall"].line, KEEP_FETCHALL_NOTE)
    if (idle := get("idle")) is not None and idle.value:
        if account.protocol is Protocol.IMAP:
            account.push = True  # fetchmail's IDLE on one folder: push, on every folder
        else:
            account.note(idle.line, "`idle` on POP3: POP3 has no IDLE; the account is polled")
    for key, attribute in (("limit", "max_size"), ("fetchlimit", "max_messages_per_run")):
        if (number := value(key)) is not None and int(number) > 0:
            setattr(account, attribute, int(number))  # fetchlimit: the rest comes next run
    if (folders := get("folder")) is not None:
        names = tuple(str(x) for x in folders.value)  # type: ignore[attr-defined]
        if account.protocol is Protocol.IMAP:
            account.folders = tuple(folder_name(account, name, folders.line) for name in names)
        else:
            account.note(folders.line, "folders on POP3: POP3 has only the INBOX, ignored")
    if (interval := value("interval")) is not None and int(interval) > 1:
        if daemon:
            account.interval = daemon * int(interval)
        else:
            account.note(opts["interval"].line, "`interval` without `set daemon`: ignored")
    elif daemon:
        account.interval = daemon
    _map_local_names(account, user)
    for name, why in _UNSUPPORTED.items():
        opt = get(name)
        if opt is not None and opt.value is not False:
            account.note(opt.line, f"`{name}` is not supported: {why}")
    return account


def _map_security(account: ImportedAccount, opts: dict[str, _Opt], port: int | None) -> None:
    ssl, sslproto = opts.get("ssl"), opts.get("sslproto")
    if ssl is not None and ssl.value:
        account.security = Security.SSL
    elif sslproto is not None and not str(sslproto.value):
        account.security = Security.NONE
        account.note(sslproto.line, "sslproto '': no TLS at all, the password goes in clear")
    else:
        account.security = Security.STARTTLS
        line = sslproto.line if sslproto is not None else account.line
        account.note(line, STARTTLS_NOTE)
    if (certck := opts.get("sslcertck")) is not None and not certck.value:
        account.verify_cert = False
        account.note(certck.line, "`no sslcertck`: the certificate is not verified")
    if (certfile := opts.get("sslcertfile")) is not None:
        account.ca_file = str(certfile.value)
    if port is not None and port in (995, 993) and account.security is not Security.SSL:
        account.note(account.line, f"port {port} without `ssl`: check the security setting")


def _map_local_names(account: ImportedAccount, user: _User) -> None:
    names = user.locals_
    if user.multidrop_line or len(names) > 1 or "*" in names:
        account.skip = account.skip or (
            f"multidrop (local names {' '.join(names)}): mailhaul delivers each "
            "account to one address; add one account per destination"
        )
        return
    if not names:
        return
    if "@" in names[0]:
        account.deliver_to = names[0]
    else:
        account.local_name = names[0]
