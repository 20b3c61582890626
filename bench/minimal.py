"""A minimal single-purpose mail retriever (stdlib only): the practical limit of this machine.

    minimal.py {pop3|imap} HOST PORT USER MAILDIR [--tls CA] [--keep STATEFILE]  < password

IMAP: one `UID FETCH 1:* BODY.PEEK[]` (or of the UIDs not in the state file with --keep);
POP3: a plain `RETR` loop. Each message is streamed into MAILDIR/tmp with CRLF turned into LF,
fsync'd and renamed into new/; new/ is fsync'd once at the end, and only then are the messages
deleted on the server (one pipelined batch of DELE, or one UID STORE + EXPUNGE). With --keep
nothing is deleted: the UIDLs / UIDVALIDITY+UIDs already fetched are kept in STATEFILE, and a
poll with nothing new is a login, one listing, a comparison with that set, and a logout.

No error recovery, no size limit, no database: only what the job needs. Prints one JSON line:
{"fetched": N, "bytes": B, "seconds": S} (S from connect to logout, without interpreter start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

CHUNK = 1 << 20


class Conn:
    """A socket with a read buffer."""

    def __init__(self, host: str, port: int, ca: str | None) -> None:
        sock = socket.create_connection((host, port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ca:
            import ssl  # only when needed: the slowest import here

            ctx = ssl.create_default_context(cafile=ca)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> None:
        data = self.sock.recv(CHUNK)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def readline(self) -> bytes:
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            start = len(self.buf)
            self.fill()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class Maildir:
    """tmp/ → fsync → new/ for each message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()
        self.seq = 0

    def open(self) -> tuple[int, str]:
        self.seq += 1
        now = time.time()
        name = f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{self.seq}.{self.host}"
        fd = os.open(self.path / "tmp" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return fd, name

    def commit(self, fd: int, name: str) -> None:
        os.fsync(fd)
        os.close(fd)
        os.rename(self.path / "tmp" / name, self.path / "new" / name)

    def sync(self) -> None:
        fd = os.open(self.path / "new", os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- POP3 ------------------------------------------------------------------------------------


def pop3_ok(conn: Conn) -> bytes:
    line = conn.readline()
    if not line.startswith(b"+OK"):
        raise RuntimeError(f"POP3 error: {line!r}")
    return line


def pop3_multiline(conn: Conn) -> bytes:
    pop3_ok(conn)
    while True:
        if conn.buf.startswith(b".\r\n"):
            del conn.buf[:3]
            return b""
        i = conn.buf.find(b"\r\n.\r\n")
        if i >= 0:
            data = bytes(conn.buf[: i + 2])
            del conn.buf[: i + 5]
            return data
        conn.fill()


def pop3_retr(conn: Conn, n: int, fd: int) -> int:
    """RETR message n, streaming it into fd (dot-unstuffed, LF line ends); returns bytes."""
    conn.send(b"RETR %d\r\n" % n)
    pop3_ok(conn)
    written = 0
    buf = conn.buf
    while True:
        # buf always starts at the beginning of a line here.
        if buf.startswith(b".\r\n"):
            del buf[:3]
            return written
        end = buf.find(b"\r\n.\r\n")
        if end >= 0:
            cut, skip = end + 2, 3
        elif len(buf) >= CHUNK // 4:
            cut, skip = buf.rfind(b"\n") + 1, 0
        else:
            cut = 0
        if cut > 0:
            seg = bytes(buf[:cut])
            del buf[: cut + (skip if end >= 0 else 0)]
            if seg.startswith(b".."):
                seg = seg[1:]
            seg = seg.replace(b"\n..", b"\n.").replace(b"\r\n", b"\n")
            write_all(fd, seg)
            written += len(seg)
            if end >= 0:
                return written
            continue
        conn.fill()


def run_pop3(conn: Conn, user: str, password: str, box: Maildir, state: Path | None) -> int:
    pop3_ok(conn)
    conn.send(f"USER {user}\r\n".encode())
    pop3_ok(conn)
    conn.send(f"PASS {password}\r\n".encode())
    pop3_ok(conn)
    known: set[str] = set()
    if state is not None:
        if state.exists():
            known = set(state.read_text().split())
        conn.send(b"UIDL\r\n")
        listing = [ln.split() for ln in pop3_multiline(conn).decode().splitlines()]
        todo = [(int(n), uidl) for n, uidl in listing if uidl not in known]
    else:
        conn.send(b"STAT\r\n")
        count = int(pop3_ok(conn).split()[1])
        todo = [(n, "") for n in range(1, count + 1)]
    total = 0
    for n, _uidl in todo:
        fd, name = box.open()
        total += pop3_retr(conn, n, fd)
        box.commit(fd, name)
    if todo:
        box.sync()
    if state is not None:
        if todo:
            save_state(state, known | {uidl for _n, uidl in todo})
    elif todo:
        conn.send(b"".join(b"DELE %d\r\n" % n for n, _ in todo))  # pipelined
        for _ in todo:
            pop3_ok(conn)
    conn.send(b"QUIT\r\n")
    pop3_ok(conn)
    return total if todo else 0


# --- IMAP ------------------------------------------------------------------------------------

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_UID = re.compile(rb"\bUID (\d+)")


class Imap:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.tag = 0

    def command(self, cmd: str) -> list[bytes]:
        """Send a command without literals in its response; the untagged lines."""
        self.tag += 1
        tag = b"a%d " % self.tag
        self.conn.send(tag + cmd.encode() + b"\r\n")
        lines: list[bytes] = []
        while True:
            line = self.conn.readline()
            if line.startswith(tag):
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(f"IMAP {cmd.split()[0]} failed: {line!r}")
                return lines
            lines.append(line)

    def fetch(self, uids: str, box: Maildir) -> tuple[list[int], int]:
        """UID FETCH uids BODY.PEEK[] streamed into the Maildir."""
        self.tag += 1
        tag = b"a%d " % self.tag
        self.conn.send(tag + f"UID FETCH {uids} BODY.PEEK[]\r\n".encode())
        conn = self.conn
        fetched: list[int] = []
        total = 0
        while True:
            line = conn.readline()
            if line.startswith(tag):
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(f"IMAP FETCH failed: {line!r}")
                return fetched, total
            m = _LITERAL.search(line)
            if not m:
                continue
            size = int(m.group(1))
            fd, name = box.open()
            left = size
            carry = False  # a CR at the end of the previous chunk
            while left:
                if not conn.buf:
                    conn.fill()
                take = min(left, len(conn.buf))
                chunk = bytes(conn.buf[:take])
                del conn.buf[:take]
                left -= take
                if carry:
                    chunk = b"\r" + chunk
                carry = chunk.endswith(b"\r") and left > 0
                if carry:
                    chunk = chunk[:-1]
                chunk = chunk.replace(b"\r\n", b"\n")
                write_all(fd, chunk)
                total += len(chunk)
            box.commit(fd, name)
            rest = conn.readline()
            uid = _UID.search(line) or _UID.search(rest)
            if uid is None:
                raise RuntimeError(f"no UID in FETCH response {line!r}")
            fetched.append(int(uid.group(1)))


def uid_set(uids: list[int]) -> str:
    uids = sorted(uids)
    parts = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def run_imap(conn: Conn, user: str, password: str, box: Maildir, state: Path | None) -> int:
    imap = Imap(conn)
    conn.readline()  # greeting
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    imap.command(f'LOGIN "{user}" "{quoted}"')
    lines = imap.command("SELECT INBOX")
    exists = 0
    uidvalidity = "0"
    for line in lines:
        m = re.match(rb"\* (\d+) EXISTS", line)
        if m:
            exists = int(m.group(1))
        m = re.search(rb"\[UIDVALIDITY (\d+)\]", line)
        if m:
            uidvalidity = m.group(1).decode()
    total = 0
    if state is not None:
        known: set[str] = set(state.read_text().split()) if state.exists() else set()
        listed: list[int] = []
        if exists:
            for line in imap.command("UID SEARCH ALL"):
                if line.startswith(b"* SEARCH"):
                    listed += [int(x) for x in line.split()[2:]]
        new = [u for u in listed if f"{uidvalidity}:{u}" not in known]
        if new:
            fetched, total = imap.fetch(uid_set(new), box)
            box.sync()
            save_state(state, known | {f"{uidvalidity}:{u}" for u in fetched})
    elif exists:
        fetched, total = imap.fetch("1:*", box)
        if fetched:
            box.sync()
            imap.command(f"UID STORE {uid_set(fetched)} +FLAGS.SILENT (\\Deleted)")
            imap.command("EXPUNGE")
    imap.command("LOGOUT")
    return total


def save_state(path: Path, items: set[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write("\n".join(sorted(items)) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("protocol", choices=("pop3", "imap"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--tls", metavar="CA", help="implicit TLS, verified against this CA")
    ap.add_argument("--keep", metavar="STATEFILE", type=Path)
    args = ap.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    new = args.maildir / "new"
    before = len(os.listdir(new)) if new.is_dir() else 0
    started = time.perf_counter()
    box = Maildir(args.maildir)
    conn = Conn(args.host, args.port, args.tls)
    try:
        run = run_pop3 if args.protocol == "pop3" else run_imap
        total = run(conn, args.user, password, box, args.keep)
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    fetched = len(os.listdir(new)) - before
    print(json.dumps({"fetched": fetched, "bytes": total, "seconds": seconds}))


if __name__ == "__main__":
    main()
