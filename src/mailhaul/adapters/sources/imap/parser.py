"""Pure parsing of IMAP server responses (RFC 3501 §7 and §9): no I/O.

A response is one line, or several lines joined by literals (``* 1 FETCH (BODY[] {5}``,
CRLF, five bytes, ``)``). ``ResponseAssembler`` takes the first line, then asks for each
literal it needs (``literal_needed``); the caller reads it (or streams a message body
itself and feeds a ``Streamed`` marker) and the next line, until the response is whole.

Values: atoms → ``str``, numbers → ``int``, quoted strings and literals → ``bytes``,
``NIL`` → ``None``, parenthesised lists → ``list``. Anything malformed raises
``ProtocolViolation``, never ``ValueError`` or ``IndexError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from mailhaul.domain.errors import ProtocolViolation

MAX_UID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Streamed:
    """Stands for a literal of ``size`` bytes that the caller streamed elsewhere."""

    size: int


Value: TypeAlias = "str | int | bytes | Streamed | list[Value] | None"


@dataclass(frozen=True, slots=True)
class Status:
    """An ``OK``/``NO``/``BAD``/``BYE``/``PREAUTH`` response; ``tag`` is None if untagged."""

    tag: str | None
    kind: str
    code: str | None
    code_args: tuple[Value, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Continuation:
    """A ``+`` continuation request."""

    text: str


@dataclass(frozen=True, slots=True)
class Untagged:
    """Untagged data other than FETCH: ``* 3 EXISTS``, ``* FLAGS (...)``, ``* LIST ...``."""

    name: str
    number: int | None
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Fetch:
    """One ``* n FETCH (...)`` response: message sequence number and items by upper name."""

    seq: int
    items: dict[str, Value]

    def uid(self) -> int | None:
        """The UID item, or None when absent."""
        value = self.items.get("UID")
        if value is None:
            return None
        if not isinstance(value, int) or not 0 < value <= MAX_UID:
            raise ProtocolViolation(f"invalid UID {value!r} in FETCH response")
        return value

    def size(self) -> int | None:
        """The RFC822.SIZE item, or None when absent."""
        value = self.items.get("RFC822.SIZE")
        if value is None:
            return None
        if not isinstance(value, int) or value < 0:
            raise ProtocolViolation(f"invalid RFC822.SIZE {value!r} in FETCH response")
        return value

    def flags(self) -> frozenset[str] | None:
        """The FLAGS item (as sent), or None when absent."""
        value = self.items.get("FLAGS")
        if value is None:
            return None
        if not isinstance(value, list):
            raise ProtocolViolation(f"invalid FLAGS {value!r} in FETCH response")
        return frozenset(_text(flag) for flag in value)

    def seen(self) -> bool:
        """Whether FLAGS holds ``\\Seen``."""
        return any(flag.upper() == "\\SEEN" for flag in self.flags() or ())

    def section(self, *names: str) -> tuple[str, Value] | None:
        """The first item present among ``names`` (upper case), with its value."""
        for name in names:
            if name in self.items:
                return name, self.items[name]
        return None


Response: TypeAlias = Status | Continuation | Untagged | Fetch

BODY_ITEMS = ("BODY[]", "BODY[]<0>", "RFC822", "BINARY[]", "BINARY[]<0>")
"""FETCH item names that carry a whole message."""
HEADER_ITEMS = ("BODY[HEADER]", "RFC822.HEADER", "BODY[HEADER]<0>")
"""FETCH item names that carry a header section."""
STATUS_KINDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})

_TOKEN = re.compile(
    rb"""
      (?P<sp>[ ]+)
    | (?P<open>\()
    | (?P<close>\))
    | "(?P<quoted>(?:[^"\\\r\n]|\\[^\r\n])*)"
    | ~?\{(?P<literal>[^}]*)\}\Z
    | (?P<atom>(?:[^\x00-\x20\x7f()"{\[]|\[[^\]\r\n]*\])(?:[^\x00-\x20\x7f()"\[]|\[[^\]\r\n]*\])*)
    """,
    re.VERBOSE,
)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_LITERAL_SIZE = re.compile(rb"[0-9]{1,19}\+?")
_NUMBER = re.compile(rb"[0-9]{1,10}")
_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9._-]*")
_FAST_ITEM_ALT = rb"(?:(?:UID|RFC822\.SIZE) [0-9]{1,19}|FLAGS \([^()\"{}\[\]\x00-\x1f\x7f]*\))"
_FAST_SEARCH = re.compile(rb"(?:[1-9][0-9]{0,9}(?: [1-9][0-9]{0,9})*)?")
_FAST_FETCH = re.compile(rb"\(" + _FAST_ITEM_ALT + rb"(?: " + _FAST_ITEM_ALT + rb")*\)")
_FAST_ITEM = re.compile(rb"(UID|RFC822\.SIZE) ([0-9]+)|FLAGS \(([^)]*)\)")


def show(data: bytes, limit: int = 120) -> str:
    """A short printable excerpt of server bytes for an error message."""
    text = repr(data[:limit])[2:-1]
    return text + ("..." if len(data) > limit else "")


def _text(value: Value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "NIL" if value is None else str(value)


def _atom(raw: bytes) -> Value:
    if raw.isdigit() and len(raw) <= 20:
        return int(raw)
    if raw.upper() == b"NIL":
        return None
    return raw.decode("utf-8", "replace")


def _literal_size(raw: bytes) -> int:
    if _LITERAL_SIZE.fullmatch(raw) is None:
        raise ProtocolViolation(f"literal size is not a number: {{{show(raw, 40)}}}")
    return int(raw.rstrip(b"+"))


class _Builder:
    """Builds nested lists from token lines, keeping open parentheses across literals."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        self.root: list[Value] = []
        self.stack: list[list[Value]] = [self.root]

    def feed(self, line: bytes, pos: int = 0) -> int | None:
        """Tokenize ``line``; returns the size of the literal it ends with, if any."""
        stack = self.stack
        top = stack[-1]
        end = len(line)
        while pos < end:
            match = _TOKEN.match(line, pos)
            if match is None:
                raise ProtocolViolation(_bad_token(line, pos))
            kind = match.lastgroup
            pos = match.end()
            if kind == "sp":
                continue
            if kind == "open":
                new: list[Value] = []
                top.append(new)
                stack.append(new)
                top = new
            elif kind == "close":
                if len(stack) == 1:
                    raise ProtocolViolation(f"unbalanced ')' in response: {show(line)}")
                stack.pop()
                top = stack[-1]
            elif kind == "quoted":
                quoted = match.group("quoted")
                top.append(_UNESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
            elif kind == "literal":
                return _literal_size(match.group("literal"))
            else:
                top.append(_atom(match.group("atom")))
        return None

    def add(self, value: Value) -> None:
        self.stack[-1].append(value)

    def finish(self, line: bytes) -> None:
        if len(self.stack) != 1:
            raise ProtocolViolation(f"unbalanced '(' in response: {show(line)}")


def _bad_token(line: bytes, pos: int) -> str:
    char = line[pos : pos + 1]
    if char == b'"':
        return f"unterminated quoted string in response: {show(line)}"
    if char in (b"{", b"~"):
        return f"malformed literal in response: {show(line)}"
    if char == b"[":
        return f"unbalanced '[' in response: {show(line)}"
    return f"unexpected {show(char)!r} at column {pos} in response: {show(line)}"


def parse_values(data: bytes) -> list[Value]:
    """The values on one line without literals (a helper for tests and response codes)."""
    builder = _Builder()
    if builder.feed(data) is not None:
        raise ProtocolViolation(f"unexpected literal in {show(data)}")
    builder.finish(data)
    return builder.root


def _parse_status(tag: str | None, kind: str, rest: bytes) -> Status:
    code: str | None = None
    args: tuple[Value, ...] = ()
    rest = rest.lstrip(b" ")
    if rest.startswith(b"["):
        close = rest.find(b"]")
        if close > 0:
            name, _, arg_text = rest[1:close].partition(b" ")
            code = name.decode("ascii", "replace").upper()
            try:
                args = tuple(parse_values(arg_text))
            except ProtocolViolation:
                args = (arg_text.decode("utf-8", "replace"),)
            rest = rest[close + 1 :].lstrip(b" ")
    return Status(tag, kind, code, args, rest.decode("utf-8", "replace"))


def _number(raw: bytes, line: bytes) -> int:
    if _NUMBER.fullmatch(raw) is None:
        raise ProtocolViolation(f"bad message number in response: {show(line)}")
    return int(raw)


class ResponseAssembler:
    """Parses one response, line by line and literal by literal (see the module doc)."""

    __slots__ = ("_builder", "_done", "_first", "_name", "_number", "literal_needed")

    def __init__(self, line: bytes) -> None:
        self._first = line = line.rstrip(b"\r\n")
        self._builder: _Builder | None = None
        self._done: Response | None = None
        self._name = ""
        self._number: int | None = None
        self.literal_needed: int | None = None
        tag, sep, rest = line.partition(b" ")
        if tag == b"+":
            self._done = Continuation(rest.decode("utf-8", "replace"))
            return
        if not sep:
            raise ProtocolViolation(f"malformed response line: {show(line)}")
        word, _, rest = rest.partition(b" ")
        if tag != b"*":
            kind = word.decode("ascii", "replace").upper()
            if kind not in ("OK", "NO", "BAD"):
                raise ProtocolViolation(f"malformed tagged response: {show(line)}")
            self._done = _parse_status(tag.decode("ascii", "replace"), kind, rest)
            return
        name = word.decode("ascii", "replace").upper()
        if name in STATUS_KINDS:
            self._done = _parse_status(None, name, rest)
            return
        if word.isdigit():
            self._number = _number(word, line)
            name_raw, _, rest = rest.partition(b" ")
            name = name_raw.decode("ascii", "replace").upper()
            if _NAME.fullmatch(name_raw) is None:
                raise ProtocolViolation(f"malformed untagged response: {show(line)}")
        elif _NAME.fullmatch(word) is None:
            raise ProtocolViolation(f"malformed untagged response: {show(line)}")
        self._name = name
        if name == "SEARCH" and _FAST_SEARCH.fullmatch(rest) is not None:
            self._done = Untagged(name, self._number, tuple(int(n) for n in rest.split()))
            return
        if name == "FETCH" and _FAST_FETCH.fullmatch(rest) is not None:
            self._done = _fast_fetch(self._number, rest)
            return
        self._builder = _Builder()
        self.literal_needed = self._builder.feed(rest)

    def pending_item(self) -> str | None:
        """For a FETCH waiting for a literal: the item name the literal is the value of."""
        if self.literal_needed is None or self._builder is None or self._name != "FETCH":
            return None
        stack = self._builder.stack
        if len(stack) == 2 and len(stack[1]) % 2 == 1:
            key = stack[1][-1]
            return key.upper() if isinstance(key, str) else None
        return None

    def partial_items(self) -> dict[str, Value]:
        """The FETCH items complete so far (for a response waiting for a literal)."""
        if self._builder is None or len(self._builder.stack) < 2:
            return {}
        items = self._builder.stack[1]
        partial: dict[str, Value] = {}
        for i in range(0, len(items) - 1, 2):
            key = items[i]
            if isinstance(key, str):
                partial[key.upper()] = items[i + 1]
        return partial

    @property
    def number(self) -> int | None:
        """The message number of ``* n ...`` responses."""
        return self._number

    def feed_literal(self, data: bytes | Streamed) -> None:
        """The literal asked for by ``literal_needed`` (or a marker if it was streamed)."""
        if self._builder is None or self.literal_needed is None:
            raise ProtocolViolation("internal: no literal expected")
        self._builder.add(data)
        self.literal_needed = None

    def feed_line(self, line: bytes) -> None:
        """The line that follows a literal."""
        if self._builder is None or self.literal_needed is not None:
            raise ProtocolViolation("internal: no line expected")
        self.literal_needed = self._builder.feed(line.rstrip(b"\r\n"))

    def result(self) -> Response:
        """The parsed response, once no literal is needed."""
        if self._done is not None:
            return self._done
        if self._builder is None or self.literal_needed is not None:
            raise ProtocolViolation("internal: response is not complete")
        self._builder.finish(self._first)
        values = self._builder.root
        if self._name == "FETCH":
            if self._number is None or len(values) != 1 or not isinstance(values[0], list):
                raise ProtocolViolation(f"malformed FETCH response: {show(self._first)}")
            self._done = Fetch(self._number, _fetch_items(values[0], self._first))
        else:
            self._done = Untagged(self._name, self._number, tuple(values))
        return self._done


def _fetch_items(values: list[Value], line: bytes) -> dict[str, Value]:
    if len(values) % 2:
        raise ProtocolViolation(f"FETCH item without a value: {show(line)}")
    items: dict[str, Value] = {}
    for i in range(0, len(values), 2):
        key = values[i]
        if not isinstance(key, str):
            raise ProtocolViolation(f"bad FETCH item name {key!r}: {show(line)}")
        items[key.upper()] = values[i + 1]
    return items


def _fast_fetch(number: int | None, rest: bytes) -> Fetch:
    if number is None:
        raise ProtocolViolation(f"FETCH without a message number: {show(rest)}")
    items: dict[str, Value] = {}
    for match in _FAST_ITEM.finditer(rest):
        name, digits, flags = match.groups()
        if flags is not None:
            items["FLAGS"] = [_atom(flag) for flag in flags.split()]
        else:
            items[name.decode("ascii")] = int(digits)
    return Fetch(number, items)


def parse_response(*segments: bytes) -> Response:
    """Parse a whole response given as line, literal, line, literal, ..., line."""
    assembler = ResponseAssembler(segments[0])
    for i in range(1, len(segments), 2):
        if assembler.literal_needed is None:
            raise ProtocolViolation("more segments than literals")
        if len(segments[i]) != assembler.literal_needed:
            raise ProtocolViolation("literal length does not match its announced size")
        assembler.feed_literal(segments[i])
        if i + 1 >= len(segments):
            raise ProtocolViolation("response ends after a literal")
        assembler.feed_line(segments[i + 1])
    return assembler.result()
