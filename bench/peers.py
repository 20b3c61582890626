"""fetchmail and getmail6 as benchmark peers: their configuration files and command lines.

Both run as the unprivileged mail user (getmail6 refuses Maildir delivery as root; fetchmail
warns against root) from a directory of their own, delivering into a Maildir with an fsync
per message: getmail6 with its native Maildir destination (it fsyncs each file), fetchmail
through an MDA that is a minimal Maildir writer (bench/mda.c compiled with cc, or a sh
fallback when no compiler is there). fetchmail forks `sh -c MDA` once per message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FETCHMAIL = "/usr/bin/fetchmail"
GETMAIL = "/usr/bin/getmail"

SH_MDA = """\
#!/bin/sh
# Minimal Maildir writer for fetchmail: stdin -> $1/tmp/NAME, fsync (sync FILE), -> $1/new/.
set -e
name="$(date +%s.%N).P$$.bench"
cat > "$1/tmp/$name"
sync "$1/tmp/$name"
mv "$1/tmp/$name" "$1/new/$name"
"""


@dataclass(frozen=True)
class Source:
    """Where a tool connects to: one mailbox of the test Dovecot."""

    protocol: str  # pop3 | imap
    tls: bool
    port: int
    user: str
    password: str
    ca_path: Path


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def build_mda(work: Path) -> tuple[Path, str]:
    """The fastest fair MDA available: compiled C if there is a compiler, else sh."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        out = work / "mda"
        subprocess.run(
            [cc, "-O2", "-o", str(out), str(BENCH / "mda.c")],
            check=True,
            capture_output=True,
        )
        os.chmod(out, 0o755)  # noqa: S103 - run by the mail user
        return out, "C (bench/mda.c): open tmp/, write, fsync, close, rename into new/"
    out = work / "mda.sh"
    out.write_text(SH_MDA)
    os.chmod(out, 0o755)  # noqa: S103 - run by the mail user
    return out, "sh: cat > tmp/, sync FILE, mv into new/ (no C compiler found)"


def _base_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _q(value: str) -> str:
    if '"' in value or "\\" in value:
        raise ValueError(f"unquotable value for an rc file: {value!r}")
    return f'"{value}"'


def fetchmail(
    src: Source, home: Path, maildir: Path, mda: Path, *, keep: bool, mail_user: str
) -> Invocation:
    """A fetchmail run: rc file (0600) and id file of its own in `home`."""
    proto = "POP3" if src.protocol == "pop3" else "IMAP"
    server_opts = "uidl " if keep and src.protocol == "pop3" else ""
    if src.tls:
        security = (
            f"ssl sslcertck sslcertfile {_q(str(src.ca_path))} sslcommonname {_q('localhost')}"
        )
        host = "localhost"
    else:
        security = 'sslproto ""'  # no silent STARTTLS upgrade on the plain port
        host = "127.0.0.1"
    rc = (
        "set no syslog\n"
        "set no bouncemail\n"
        "set no spambounce\n"
        f"set postmaster {_q(mail_user)}\n\n"
        f"poll {host} service {src.port} protocol {proto} {server_opts}auth password\n"
        f"    user {_q(src.user)} there with password {_q(src.password)} is {_q(mail_user)} "
        "here\n"
        f"    {'keep' if keep else 'nokeep'} {security}\n"
        f"    mda {_q(f'{mda} {maildir}')}\n"
    )
    path = home / "fetchmailrc"
    path.write_text(rc)
    os.chmod(path, 0o600)
    env = _base_env(home) | {"FETCHMAILHOME": str(home)}
    argv = [
        FETCHMAIL,
        "-s",
        "-f",
        str(path),
        "-i",
        str(home / "fetchids"),
        "--pidfile",
        str(home / "fetchmail.pid"),
    ]
    return Invocation(argv, env, home)


def getmail(src: Source, home: Path, maildir: Path, *, keep: bool) -> Invocation:
    """A getmail6 run with its native Maildir destination; its getmaildir is `home`."""
    kind = {"pop3": "SimplePOP3", "imap": "SimpleIMAP"}[src.protocol]
    kind += "SSLRetriever" if src.tls else "Retriever"
    lines = [
        "[retriever]",
        f"type = {kind}",
        f"server = {'localhost' if src.tls else '127.0.0.1'}",
        f"port = {src.port}",
        f"username = {src.user}",
        f"password = {src.password}",
    ]
    if src.tls:
        lines.append(f"ca_certs = {src.ca_path}")
    if src.protocol == "imap":
        lines.append('mailboxes = ("INBOX",)')
    lines += [
        "",
        "[destination]",
        "type = Maildir",
        f"path = {maildir}/",
        "",
        "[options]",
        "verbose = 0",
        f"read_all = {'false' if keep else 'true'}",
        f"delete = {'false' if keep else 'true'}",
        "message_log_syslog = false",
        "",
    ]
    path = home / "getmailrc"
    path.write_text("\n".join(lines))
    os.chmod(path, 0o600)
    argv = [GETMAIL, f"--getmaildir={home}", f"--rcfile={path}"]
    return Invocation(argv, _base_env(home), home)


def versions() -> dict[str, str]:
    """Version strings of the peers (for the report)."""
    out: dict[str, str] = {}
    try:
        text = subprocess.run(
            [FETCHMAIL, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
        first = next((ln for ln in text.splitlines() if "release" in ln), "")
        out["fetchmail"] = first.split("release", 1)[1].split("+", 1)[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        out["fetchmail"] = "?"
    try:
        text = subprocess.run(
            [GETMAIL, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
        out["getmail6"] = text.split()[-1] if text.split() else "?"
    except (OSError, subprocess.SubprocessError):
        out["getmail6"] = "?"
    return out
