"""Delivery through an MDA program (``dovecot-lda``, ``procmail``, ``maildrop``…), one process
per message, the message on its standard input.

The command is an argument list (a string is split with ``shlex.split``); each argument has
``{address}``, ``{local}``, ``{domain}``, ``{sender}`` and ``{account}`` replaced by plain
string substitution, in one pass (a value that itself contains ``{…}`` is not expanded
again). The program is started without a shell (``shell=False``), so a destination full of
shell metacharacters is one literal argument and runs nothing. ``{account}`` is the label
the run's session was opened with (the account's id).

The message is streamed to stdin as the poller writes it (LF line ends by default, as an MDA
reading a local mailbox expects; ``line_ends="crlf"`` passes the bytes as received). Without
a fixed ``sender`` and with ``{sender}`` in the command, the process starts once the header
section has arrived (its ``Return-Path``, else ``From:`` address, else "").

Verdict by exit status (sysexits.h): 0 delivered; 75 (EX_TEMPFAIL) →
``TemporaryDeliveryError``; 67 (EX_NOUSER) → ``DestinationMissing``; any other →
``PermanentDeliveryError`` with the status and the last 4 KiB of stderr. Killed by a signal,
no progress within ``timeout`` (the process group is killed), or the program missing →
``TemporaryDeliveryError``. Errors come from ``begin()`` (the program cannot start), from
``write()`` (the program stopped reading or stalled), and from ``commit()`` (the exit status).
``abort()`` kills the process group *before* closing stdin, so an MDA never sees the end of a
partial message and never delivers it.

Use ``dovecot-lda -e`` (rejections as an exit status on stderr, instead of a bounce mail).
An exit status cannot be checked later: ``was_delivered()`` is None, and a run that dies
between the MDA's exit 0 and the poller's record fetches that message again next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from mailhaul.adapters.sinks.envelope import HeaderBuffer
from mailhaul.adapters.sinks.transforms import CrlfToLf
from mailhaul.domain.errors import (
    ConfigError,
    DeliveryError,
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

if TYPE_CHECKING:
    from mailhaul.settings_keys import DeliverySettings

EX_NOUSER = 67
EX_TEMPFAIL = 75
STDERR_KEEP = 4096
_PLACEHOLDER = re.compile(r"\{(address|local|domain|sender|account)\}")


class MdaDelivery:
    """One message being piped into one MDA process."""

    def __init__(self, sink: MdaSink, values: dict[str, str], needs_sender: bool) -> None:
        self._sink = sink
        self._values = values
        self._lf = CrlfToLf() if sink.line_ends == "lf" else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._stdin: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._errtext = bytearray()
        self._header = HeaderBuffer() if needs_sender else None
        if self._header is None:
            self._spawn()

    @property
    def _name(self) -> str:
        return os.path.basename(self._sink.command[0])

    def _spawn(self) -> None:
        values = self._values
        args = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in self._sink.command]
        try:
            self._proc = subprocess.Popen(
                args,
                shell=False,
                bufsize=0,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,  # its own process group: a timeout kills it all
            )
        except (OSError, ValueError) as exc:
            raise TemporaryDeliveryError(f"cannot run the MDA {args[0]!r}: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._stdin, self._stderr = self._proc.stdin, self._proc.stderr
        os.set_blocking(self._stdin.fileno(), False)
        os.set_blocking(self._stderr.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stderr, selectors.EVENT_READ)

    # --- the pipes ---------------------------------------------------------------------------

    def _read_stderr(self) -> bool:
        """Take what stderr has (keeping the last 4 KiB); False at its end."""
        assert self._stderr is not None
        try:
            data = os.read(self._stderr.fileno(), 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            assert self._selector is not None
            self._selector.unregister(self._stderr)
            return False
        self._errtext += data
        del self._errtext[:-STDERR_KEEP]
        return True

    def _pump(self, data: bytes) -> None:
        """Write ``data`` to stdin, draining stderr meanwhile; ``timeout`` without progress
        kills the MDA."""
        if not data:
            return
        selector, stdin = self._selector, self._stdin
        assert selector is not None and stdin is not None
        view = memoryview(data)
        fd = stdin.fileno()
        selector.register(stdin, selectors.EVENT_WRITE)
        try:
            deadline = time.monotonic() + self._sink.timeout
            while view:
                events = selector.select(max(0.0, deadline - time.monotonic()))
                if not events:
                    raise self._kill("took no input")
                for ready, _mask in events:
                    if ready.fileobj is self._stderr:
                        self._read_stderr()
                        continue
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        raise self._stopped_reading() from None
                    deadline = time.monotonic() + self._sink.timeout
        finally:
            if self._selector is selector:  # (not closed meanwhile by a kill)
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(stdin)

    def _finish(self) -> int:
        """Close stdin (the end of the message), read stderr to its end, reap the process."""
        assert self._proc is not None and self._stdin is not None and self._selector is not None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._stdin)
        with contextlib.suppress(OSError):
            self._stdin.close()
        deadline = time.monotonic() + self._sink.timeout
        while self._selector.get_map():
            if not self._selector.select(max(0.0, deadline - time.monotonic())):
                raise self._kill("did not finish")
            self._read_stderr()
        try:
            return self._proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise self._kill("did not exit") from None

    def _stopped_reading(self) -> DeliveryError:
        status = self._finish()
        error = self._verdict(status)
        if error is None:
            error = TemporaryDeliveryError(
                f"the MDA {self._name} exited (status 0) before reading the whole message"
            )
        self._cleanup()
        return error

    def _kill(self, what: str) -> TemporaryDeliveryError:
        self._terminate()
        return TemporaryDeliveryError(
            f"the MDA {self._name} {what} within {self._sink.timeout:g} s: killed"
            + self._stderr_tail()
        )

    def _stderr_tail(self) -> str:
        text = self._errtext.decode("utf-8", errors="replace").strip()
        return f": {text}" if text else ""

    def _verdict(self, status: int) -> DeliveryError | None:
        tail = self._stderr_tail()
        if status == 0:
            return None
        if status < 0:
            return TemporaryDeliveryError(f"the MDA {self._name} was killed by signal {-status}")
        if status == EX_TEMPFAIL:
            return TemporaryDeliveryError(f"the MDA {self._name} failed for now (75){tail}")
        if status == EX_NOUSER:
            return DestinationMissing(
                f"the MDA {self._name} has no mailbox {self._values['address']} (67){tail}"
            )
        return PermanentDeliveryError(f"the MDA {self._name} refused the message ({status}){tail}")

    # --- Delivery ------------------------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        """Stream a chunk to the MDA (held until the header is complete when {sender} waits)."""
        if self._header is not None:
            self._header.add(chunk)
            if not self._header.complete:
                return
            self._start_from_header()
            return
        if self._proc is None:
            raise TemporaryDeliveryError("this delivery has already ended")
        self._pump(self._lf.feed(chunk) if self._lf else chunk)

    def _start_from_header(self) -> None:
        assert self._header is not None
        header, self._header = self._header, None
        if self._sink.sender is None:
            self._values["sender"] = header.sender()
        self._spawn()
        data = header.take()
        self._pump(self._lf.feed(data) if self._lf else data)

    def commit(self) -> None:
        """End the message and wait for the MDA's verdict; None: no receipt."""
        if self._header is not None:
            self._start_from_header()
        if self._proc is None:
            raise TemporaryDeliveryError("this delivery has already ended")
        if self._lf is not None:
            self._pump(self._lf.finish())
        error = self._verdict(self._finish())
        self._cleanup()
        if error is not None:
            raise error

    def abort(self) -> None:
        """Kill the MDA before it sees the end of the message; never raises."""
        self._header = None
        if self._proc is not None:
            self._terminate()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._cleanup()

    def _cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for pipe in (self._stdin, self._stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class MdaSink:
    """A ``MailSink`` that runs ``command`` once per message (see the module docstring)."""

    def __init__(
        self,
        command: list[str] | str,
        timeout: float,
        sender: str | None = None,
        *,
        line_ends: Literal["lf", "crlf"] = "lf",
    ) -> None:
        try:
            args = shlex.split(command) if isinstance(command, str) else list(command)
        except ValueError as exc:
            raise ConfigError(f"MDA command {command!r}: {exc}") from exc
        if not args or not args[0]:
            raise ConfigError("the MDA command is empty")
        if line_ends not in ("lf", "crlf"):
            raise ConfigError(f"MDA line_ends must be 'lf' or 'crlf', not {line_ends!r}")
        self.command = tuple(args)
        self.timeout = timeout
        self.sender = sender
        self.line_ends = line_ends

    def files_folders(self, destination: str) -> bool:
        """Never: the command is given the address only."""
        return False

    def open_session(self, account_label: str) -> MdaSession:
        """One run's deliveries; ``account_label`` is what ``{account}`` becomes."""
        return MdaSession(self, account_label)

    def close(self) -> None:
        """Nothing to let go of: each MDA process ends with its message."""


class MdaSession:
    """One run's deliveries through the MDA (one process per message)."""

    def __init__(self, sink: MdaSink, account_label: str) -> None:
        self._sink = sink
        self.account_label = account_label

    def planned_receipt(self, destination: str, hint: str) -> str | None:
        """None: an exit status leaves nothing to look up later."""
        return None

    def begin(
        self, destination: str, receipt: str | None, folder: str | None = None
    ) -> MdaDelivery:
        """Start the MDA (or wait for the header section when {sender} needs it); the MDA
        files into folders by its own rules."""
        if destination.startswith("-") or "\0" in destination:
            raise DestinationMissing(f"{destination!r} cannot be given to an MDA")
        local, _, domain = destination.rpartition("@")
        sink = self._sink
        sender = sink.sender
        values = {
            "address": destination,
            "local": local,
            "domain": domain.lower(),
            "account": self.account_label,
            "sender": sender or "",
        }
        needs_sender = sender is None and any("{sender}" in arg for arg in sink.command)
        return MdaDelivery(sink, values, needs_sender)

    def flush(self) -> None:
        """Nothing to do: exit status 0 means the MDA has stored the message."""

    def was_delivered(self, destination: str, receipt: str) -> bool | None:
        """None: an exit status cannot be checked afterwards."""
        return None

    def close(self) -> None:
        """Nothing to end: every delivery has ended with its process."""


def sink_from_settings(delivery: DeliverySettings, home: Path) -> MdaSink:
    """The sink of ``method = "mda"``: the command ``mda``."""
    return MdaSink(delivery.mda, delivery.timeout, delivery.envelope_sender)
