"""`mailhaul import ispconfig`: rows of ISPConfig's ``mail_get`` table, as CSV (with a header
row) or as the ``INSERT`` statements of a mysqldump (with or without a column list; without
one, the dump's ``CREATE TABLE `mail_get``` gives the order, else ISPConfig 3's).

ISPConfig fetches with getmail: ``type`` pop3/imap is plain, pop3ssl/imapssl is SSL
(``source_ssl`` y and ``source_port`` are honoured where present); ``source_delete`` n means
keep; IMAP gets fetchall as getmail ignores \\Seen flags. ``destination`` is the local
address; ``active`` n imports the account switched off.
"""

from __future__ import annotations

import csv
import io
import re

from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import (
    ImportedAccount,
    ImportFileError,
    ImportProblem,
    ParseResult,
    parse_flag,
)

ISPCONFIG_COLUMNS = (
    "mailget_id",
    "sys_userid",
    "sys_groupid",
    "sys_perm_user",
    "sys_perm_group",
    "sys_perm_other",
    "server_id",
    "type",
    "source_server",
    "source_username",
    "source_password",
    "source_delete",
    "source_read_all",
    "destination",
    "active",
)
_TYPES = {
    "pop3": (Protocol.POP3, Security.NONE),
    "pop3ssl": (Protocol.POP3, Security.SSL),
    "pop3s": (Protocol.POP3, Security.SSL),
    "imap": (Protocol.IMAP, Security.NONE),
    "imapssl": (Protocol.IMAP, Security.SSL),
    "imaps": (Protocol.IMAP, Security.SSL),
}
_INSERT = re.compile(r"INSERT\s+(?:IGNORE\s+)?INTO\s+`?mail_get`?\s*", re.IGNORECASE)
_CREATE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?mail_get`?\s*\(", re.I)
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}

Row = tuple[int, dict[str, str | None]]


class _SqlScanner:
    """Reads the values of INSERT statements: 'strings' (with MySQL escapes), numbers, NULL."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file, self.pos = text, file, 0

    def line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def error(self, message: str) -> ImportFileError:
        return ImportFileError(self.file, self.line(), message)

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_blanks()
        if not self.text.startswith(char, self.pos):
            found = self.text[self.pos : self.pos + 20].split("\n")[0]
            raise self.error(f"expected {char!r}, found {found!r}")
        self.pos += 1

    def value(self) -> str | None:
        self.skip_blanks()
        text = self.text
        if text.startswith("'", self.pos):
            out: list[str] = []
            i = self.pos + 1
            while i < len(text):
                ch = text[i]
                if ch == "\\" and i + 1 < len(text):
                    out.append(_MYSQL_ESCAPES.get(text[i + 1], text[i + 1]))
                    i += 2
                elif ch == "'" and text.startswith("''", i):
                    out.append("'")
                    i += 2
                elif ch == "'":
                    self.pos = i + 1
                    return "".join(out)
                else:
                    out.append(ch)
                    i += 1
            raise self.error("a quoted value is not closed")
        match = re.compile(r"NULL|-?[0-9.]+(?:[eE][-+]?[0-9]+)?", re.I).match(text, self.pos)
        if match is None:
            raise self.error(f"not a value: {text[self.pos : self.pos + 20]!r}")
        self.pos = match.end()
        return None if match.group().upper() == "NULL" else match.group()

    def names(self) -> list[str]:
        self.expect("(")
        names: list[str] = []
        while True:
            self.skip_blanks()
            match = re.compile(r"`([^`]+)`|(\w+)").match(self.text, self.pos)
            if match is None:
                raise self.error("expected a column name")
            names.append((match.group(1) or match.group(2)).lower())
            self.pos = match.end()
            self.skip_blanks()
            if self.text.startswith(")", self.pos):
                self.pos += 1
                return names
            self.expect(",")


def _create_columns(text: str) -> list[str] | None:
    match = _CREATE.search(text)
    if match is None:
        return None
    columns: list[str] = []
    for line in text[match.end() :].splitlines():
        line = line.strip()
        if line.startswith(")"):
            break
        col = re.match(r"`([^`]+)`", line)
        if col:
            columns.append(col.group(1).lower())
    return columns or None


def _dump_rows(text: str, file: str) -> list[Row]:
    scanner = _SqlScanner(text, file)
    default = _create_columns(text) or list(ISPCONFIG_COLUMNS)
    rows: list[Row] = []
    for match in _INSERT.finditer(text):
        scanner.pos = match.end()
        scanner.skip_blanks()
        columns = scanner.names() if text.startswith("(", scanner.pos) else default
        scanner.skip_blanks()
        if not text[scanner.pos : scanner.pos + 6].upper() == "VALUES":
            raise scanner.error("expected VALUES")
        scanner.pos += 6
        while True:
            scanner.skip_blanks()
            start = scanner.line()
            scanner.expect("(")
            values: list[str | None] = [scanner.value()]
            scanner.skip_blanks()
            while text.startswith(",", scanner.pos):
                scanner.pos += 1
                values.append(scanner.value())
                scanner.skip_blanks()
            scanner.expect(")")
            if len(values) != len(columns):
                raise ImportFileError(
                    file, start, f"{len(values)} values for {len(columns)} columns"
                )
            rows.append((start, dict(zip(columns, values, strict=True))))
            scanner.skip_blanks()
            if text.startswith(",", scanner.pos):
                scanner.pos += 1
                continue
            break
    if not rows and "mail_get" not in text:
        raise ImportFileError(file, 0, "no INSERT INTO `mail_get` statements")
    return rows


def _csv_rows(text: str, file: str) -> list[Row]:
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return []
    if "source_server" not in header:
        raise ImportFileError(file, 1, "the header row has no source_server column")
    rows: list[Row] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                rows.append(
                    (reader.line_num, {"_error": f"{len(record)} fields, header has {len(header)}"})
                )
                continue
            values = {k: (None if v == "NULL" else v) for k, v in zip(header, record, strict=True)}
            rows.append((reader.line_num, values))
    except csv.Error as exc:
        raise ImportFileError(file, reader.line_num, str(exc)) from None
    return rows


def parse_ispconfig(text: str, file: str) -> ParseResult:
    """The accounts of a mail_get export (CSV or mysqldump)."""
    is_sql = _INSERT.search(text) is not None or _CREATE.search(text) is not None
    rows = _dump_rows(text, file) if is_sql else _csv_rows(text, file)
    result = ParseResult()
    for line, row in rows:
        try:
            result.accounts.append(_account(file, line, row))
        except ValueError as exc:
            result.problems.append(ImportProblem(file, line, str(exc)))
    return result


def _account(file: str, line: int, row: dict[str, str | None]) -> ImportedAccount:
    if "_error" in row:
        raise ValueError(str(row["_error"]))

    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    kind = get("type").lower()
    if kind not in _TYPES:
        raise ValueError(f"type {kind!r} is not pop3, pop3ssl, imap or imapssl")
    protocol, security = _TYPES[kind]
    for name in ("source_server", "source_username", "destination"):
        if not get(name):
            raise ValueError(f"{name} is empty")
    if not (row.get("source_password") or ""):
        raise ValueError("source_password is empty")
    try:
        if get("source_ssl"):
            security = Security.SSL if parse_flag(get("source_ssl")) else security
        keep = not parse_flag(get("source_delete") or "y")
        read_all = parse_flag(get("source_read_all") or "y")
        active = parse_flag(get("active") or "y")
    except ValueError as exc:
        raise ValueError(f"{exc} (y or n expected)") from None
    port_text = get("source_port")
    if port_text and not port_text.isdigit():
        raise ValueError(f"source_port {port_text!r} is not a number")
    account = ImportedAccount(
        file=file,
        line=line,
        protocol=protocol,
        host=get("source_server"),
        username=get("source_username"),
        password=row.get("source_password") or "",
        port=int(port_text) if port_text and int(port_text) else None,
        security=security,
        keep=keep,
        deliver_to=get("destination"),
        active=active,
    )
    if get("source_mailbox") and protocol is Protocol.IMAP:
        account.folders = (get("source_mailbox"),)
    if protocol is Protocol.IMAP:
        account.fetchall = True
        account.note(line, "IMAP: getmail (which ISPConfig runs) ignores \\Seen flags: fetchall on")
    if security is Security.NONE:
        account.note(line, f"type {kind}: no TLS, the password goes in clear (as with getmail)")
    if read_all and keep:
        account.note(
            line,
            "read_all without delete: getmail re-delivers every message on each run; "
            "mailhaul delivers each only once",
        )
    if not active:
        account.note(line, "active = n: imported switched off")
    return account
