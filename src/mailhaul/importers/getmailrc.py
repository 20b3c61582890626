"""`mailhaul import getmailrc`: getmail6 rc files (one retriever each), read as getmail reads
them (Python's RawConfigParser: no inline comments, no interpolation).

Retrievers: Simple/BrokenUIDL POP3 and IMAP, plain or SSL. getmail has no STARTTLS, so a
plain retriever maps to security ``none``. getmail does not look at IMAP \\Seen flags (it
remembers what it fetched), so IMAP accounts get ``fetchall``: mail read elsewhere but never
fetched is still fetched, each message once.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import re
from collections.abc import Callable

from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import (
    OAUTH2_NOTE,
    ImportedAccount,
    ImportFileError,
    ImportProblem,
    ParseResult,
    parse_flag,
)

_LineOf = Callable[[str, str], int]
_RETRIEVERS = {
    "simplepop3retriever": (Protocol.POP3, Security.NONE),
    "simplepop3sslretriever": (Protocol.POP3, Security.SSL),
    "brokenuidlpop3retriever": (Protocol.POP3, Security.NONE),
    "brokenuidlpop3sslretriever": (Protocol.POP3, Security.SSL),
    "simpleimapretriever": (Protocol.IMAP, Security.NONE),
    "simpleimapsslretriever": (Protocol.IMAP, Security.SSL),
}
_DEFAULT_PORTS = {
    (Protocol.POP3, Security.NONE): 110,
    (Protocol.POP3, Security.SSL): 995,
    (Protocol.IMAP, Security.NONE): 143,
    (Protocol.IMAP, Security.SSL): 993,
}
_UNSUPPORTED = {
    "keyfile": "client certificates are not supported",
    "certfile": "client certificates are not supported",
    "ssl_fingerprints": "the certificate is checked against its CA chain, not a fingerprint",
    "ssl_cert_hostname": "the certificate is checked against the server's host name",
    "ssl_version": "mailhaul uses TLS 1.2 or later",
    "ssl_ciphers": "mailhaul uses the system's TLS cipher choice",
    "use_apop": "mailhaul logs in with USER/PASS",
    "imap_search": "mailhaul fetches every message it has not delivered",
    "use_kerberos": "Kerberos login is not supported",
    "delete_bigger_than": "oversized messages stay on the server and are named in the log",
}


def _line_of(lines: list[str], section: str, key: str | None = None) -> int:
    """The line of ``[section]`` (or of ``key`` in it); 1 when not found."""
    current = ""
    header = re.compile(r"^\[(?P<name>[^]]+)\]")
    for number, line in enumerate(lines, 1):
        match = header.match(line)
        if match:
            current = match.group("name").strip()
            if key is None and current == section:
                return number
            continue
        if current == section and key is not None:
            name = re.split(r"[=:]", line, maxsplit=1)[0].strip().lower()
            if name == key and not line[:1].isspace():
                return number
    return 1


def _tuple(value: str) -> tuple[str, ...]:
    """A getmail tuple value such as ``("INBOX", "Sent")``; ValueError otherwise."""
    try:
        parsed = ast.literal_eval(value.strip() or "()")
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{value!r} is not a tuple of strings") from exc
    if isinstance(parsed, str):
        parsed = (parsed,)
    if not isinstance(parsed, tuple | list) or not all(isinstance(x, str) for x in parsed):
        raise ValueError(f"{value!r} is not a tuple of strings")
    return tuple(parsed)


def _read(text: str, file: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=file)
    except configparser.ParsingError as exc:
        line = int(exc.errors[0][0]) if exc.errors else 0
        bad = text.splitlines()[line - 1].strip() if 0 < line <= len(text.splitlines()) else ""
        raise ImportFileError(file, line, f"not an rc-file line (key = value): {bad!r}") from None
    except (configparser.DuplicateOptionError, configparser.DuplicateSectionError) as exc:
        raise ImportFileError(file, int(exc.lineno or 0), exc.message) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ImportFileError(file, int(exc.lineno), "text before the first [section]") from None
    except configparser.Error as exc:
        raise ImportFileError(file, 0, exc.message) from None
    return parser


def parse_getmailrc(text: str, file: str) -> ParseResult:
    """The account of one getmail rc file (a bad value makes it a problem, not an account)."""
    parser = _read(text, file)
    lines = text.splitlines()
    result = ParseResult()
    if not parser.has_section("retriever"):
        result.problems.append(ImportProblem(file, 1, "no [retriever] section"))
        return result
    retriever = dict(parser.items("retriever"))
    options = dict(parser.items("options")) if parser.has_section("options") else {}
    line = _line_of(lines, "retriever")

    def at(section: str, key: str) -> int:
        return _line_of(lines, section, key)

    try:
        account = _account(file, line, retriever, options, at)
    except ValueError as exc:
        result.problems.append(ImportProblem(file, line, str(exc)))
        return result
    _filters(parser, account, at)
    if parser.has_section("destination"):
        _destination(account, dict(parser.items("destination")), at)
    else:
        account.note(line, "no [destination]: give --deliver-to")
    result.accounts.append(account)
    return result


def _account(
    file: str,
    line: int,
    retriever: dict[str, str],
    options: dict[str, str],
    at: _LineOf,
) -> ImportedAccount:
    kind = retriever.get("type", "").strip()
    if not kind:
        raise ValueError("[retriever] has no type")
    if kind.lower().startswith(("multidrop", "multisorter")):
        raise ValueError(
            f"{kind} is a multidrop retriever: mailhaul delivers each account to one address"
        )
    if kind.lower() not in _RETRIEVERS:
        raise ValueError(f"retriever type {kind} is not supported (POP3 and IMAP, plain or SSL)")
    protocol, security = _RETRIEVERS[kind.lower()]
    for key in ("server", "username"):
        if not retriever.get(key, "").strip():
            raise ValueError(f"[retriever] has no {key}")
    if "password" not in retriever:
        how = "password_command" if "password_command" in retriever else "netrc or a prompt"
        raise ValueError(f"no password in the file (getmail would use {how}): add password =")
    port_text = retriever.get("port", "").strip()
    if port_text and not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text) if port_text else _DEFAULT_PORTS[protocol, security]
    account = ImportedAccount(
        file=file,
        line=line,
        protocol=protocol,
        host=retriever["server"].strip(),
        username=retriever["username"].strip(),
        password=retriever["password"],
        port=port,
        security=security,
        ca_file=retriever.get("ca_certs") or None,
    )
    if security is Security.NONE:
        account.note(line, f"{kind}: no TLS, the password goes in clear (as with getmail)")
    if kind.lower().startswith("brokenuidl"):
        account.note(line, f"{kind}: the server lacks UIDL, so keep cannot work")
    if protocol is Protocol.IMAP:
        raw = retriever.get("mailboxes", "('INBOX',)").strip()
        folders = ("ALL",) if raw == "ALL" else _tuple(raw)
        if folders == ("ALL",):  # every folder, all into the one destination, as getmail does
            account.rules = FolderRules(all_folders=True, mapping=(("*", ""),))
            folders = ()
        account.folders = folders or ("INBOX",)
        account.fetchall = True
        account.note(line, "IMAP: getmail ignores \\Seen flags, so fetchall is on")
    for key, why in _UNSUPPORTED.items():
        if key in retriever:
            account.note(at("retriever", key), f"`{key}` is not supported: {why}")
    move_to = retriever.get("move_on_delete", "").strip()
    if move_to and account.protocol is Protocol.IMAP:
        account.move_to = move_to  # getmail moves deleted mail there: so does mailhaul
    if parse_flag(retriever.get("use_xoauth2", "false")):
        account.oauth2, account.password = True, None  # getmail's password is its token
        account.note(at("retriever", "use_xoauth2"), OAUTH2_NOTE)
    try:
        delete = parse_flag(options.get("delete", "false"))
        read_all = parse_flag(options.get("read_all", "true"))
        max_size = int(options.get("max_message_size", "0").strip() or 0)
        delete_after = int(options.get("delete_after", "0").strip() or 0)
        per_run = int(options.get("max_messages_per_session", "0").strip() or 0)
        bytes_per_run = int(options.get("max_bytes_per_session", "0").strip() or 0)
    except ValueError as exc:
        raise ValueError(f"[options]: {exc}") from None
    account.keep = not delete
    if delete and account.protocol is Protocol.IMAP and not account.move_to:
        _on_delete(retriever.get("imap_on_delete", "").strip(), account, at)
    if delete_after > 0 and not delete:  # getmail: delete N days after first retrieval
        account.delete_after_days = delete_after
    account.max_messages_per_run = per_run or None
    account.max_bytes_per_run = bytes_per_run or None
    if read_all and not delete:
        account.note(
            at("options", "read_all"),
            "read_all without delete: getmail re-delivers every message on each run; "
            "mailhaul delivers each only once",
        )
    if max_size > 0:
        account.max_size = max_size
    for key, why in _UNSUPPORTED.items():
        if key in options and options[key].strip() not in ("", "0"):
            account.note(at("options", key), f"`{key}` is not supported: {why}")
    return account


def _on_delete(flags: str, account: ImportedAccount, at: _LineOf) -> None:
    """getmail's ``imap_on_delete``: the flags it sets instead of ``\\Deleted`` alone. Without
    ``\\Deleted`` the message stays on the server (imported as keep); with it, it is deleted
    as mailhaul always deletes (the other flags are not set)."""
    if not flags:
        return
    line = at("retriever", "imap_on_delete")
    if "\\deleted" not in flags.lower():
        account.keep = True
        account.note(
            line,
            f"imap_on_delete {flags} leaves messages on the server: imported as keep "
            "(each is delivered once; those flags are not set)",
        )
    elif flags.strip("() ").lower() != "\\deleted":
        account.note(
            line,
            f"imap_on_delete {flags}: messages are deleted (\\Deleted and expunge); the other "
            "flags are not set",
        )


_SPAM_PROGRAMS = ("spamc", "spamassassin", "rspamc")
_VIRUS_PROGRAMS = ("clamscan", "clamdscan", "clamassassin")


def _filters(parser: configparser.RawConfigParser, account: ImportedAccount, at: _LineOf) -> None:
    """getmail's ``[filter-*]`` sections: SpamAssassin / rspamd classifiers become
    ``--antispam tag``, ClamAV ones ``--antivirus quarantine``; the rest is reported."""
    spam = virus = False
    for section in parser.sections():
        if not section.lower().startswith("filter"):
            continue
        values = dict(parser.items(section))
        kind = values.get("type", "").strip()
        program = values.get("path", "").strip().rsplit("/", 1)[-1].lower()
        line = at(section, "type")
        if kind.lower() in ("filter_classifier", "filter_external") and program:
            if program.startswith(_SPAM_PROGRAMS):
                spam = True
                account.note(line, f"[{section}] {program}: the spam check (--antispam tag)")
                continue
            if program.startswith(_VIRUS_PROGRAMS):
                virus = True
                account.note(
                    line,
                    f"[{section}] {program}: the virus check (--antivirus quarantine); "
                    "infected mail is quarantined, not dropped",
                )
                continue
        account.note(
            line,
            f"[{section}] {kind or '?'} {program}: not imported (mailhaul checks with "
            "rspamd, spamd and clamd; a Sieve script can do the rest)",
        )
    if spam or virus:
        account.filters = FilterOptions(
            SpamAction.TAG if spam else SpamAction.OFF,
            VirusAction.QUARANTINE if virus else VirusAction.OFF,
        )


def _destination(account: ImportedAccount, dest: dict[str, str], at: _LineOf) -> None:
    kind = dest.get("type", "").strip()
    line = at("destination", "type")
    if kind.lower() == "maildir" and dest.get("path", "").strip():
        account.maildir = dest["path"].strip()
        return
    if kind.lower() == "mda_external":
        try:
            arguments = _tuple(dest.get("arguments", "()"))
        except ValueError:
            arguments = ()
        for flag, value in itertools.pairwise(arguments):
            if flag in ("-d", "-a") and "@" in value:
                account.deliver_to = value
                account.note(line, f"MDA_external: delivering to {value} (its -d argument)")
                return
    account.note(
        line, f"destination type {kind or '?'}: mailhaul delivers to a Maildir, give --deliver-to"
    )


def address_from_maildir(path: str, template: str, home: str) -> str | None:
    """The local address a Maildir path belongs to, or None when it names none.

    First mailhaul's own ``delivery.maildir_path`` template, then the usual panel layout
    ``…/<domain>/<local>[/Maildir]/`` (``/var/vmail/example.com/petrov/Maildir/``).
    """
    from mailhaul.domain.addresses import split_address
    from mailhaul.domain.errors import ConfigError

    path = path.rstrip("/")
    pattern = re.escape(template.replace("{home}", home).rstrip("/"))
    for name, group in (
        ("address", r"(?P<address>[^/]+@[^/]+)"),
        ("domain", r"(?P<domain>[^/]+)"),
        ("local", r"(?P<local>[^/]+)"),
    ):
        pattern = pattern.replace(re.escape("{" + name + "}"), group, 1)
    candidates: list[str] = []
    if (match := re.fullmatch(pattern, path)) is not None:
        found = match.groupdict()
        if found.get("address"):
            candidates.append(found["address"])
        elif found.get("local") and found.get("domain"):
            candidates.append(f"{found['local']}@{found['domain']}")
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1].lower() == "maildir":
        parts.pop()
    if len(parts) >= 2 and "." in parts[-2]:
        candidates.append(f"{parts[-1]}@{parts[-2]}")
    for candidate in candidates:
        try:
            split_address(candidate)
        except ConfigError:
            continue
        return candidate
    return None
