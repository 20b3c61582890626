"""What the benchmark scripts share: paths, the environment of measured processes, CPU
accounting from /proc, the machine's description, the work directory and the results files."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from support.dovecot import DovecotServer

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
RESULTS = BENCH / "results"
DOVECOT = "/usr/sbin/dovecot"
CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
INSTALL_HINT = "run scripts/install-test-deps.sh"


def say(text: str) -> None:
    print(text, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MAILHAUL_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
    env.update(extra)
    return env


# --- CPU accounting (from /proc) -----------------------------------------------------------------


def stat_fields(pid: int | str) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (state) on; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK


def session_seconds(sid: int | None) -> float:
    """CPU seconds of every process in a session, with the children they reaped."""
    if sid is None:
        return 0.0
    total = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            rest = stat_fields(entry.name)
            if rest is not None and int(rest[3]) == sid:  # field 6: session
                total += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return total / CLK


# --- the machine and the versions ----------------------------------------------------------------


def mailhaul_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run(
            [PYTHON, "-m", "mailhaul", "--version"], capture_output=True, text=True, check=False
        ).stdout
        return out.split()[-1]
    return "?"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def dovecot_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            [DOVECOT, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return "?"


def start_dovecot(server: DovecotServer, work: Path) -> int | None:
    """Start the test Dovecot in ``work``/dovecot (which the mail user must traverse);
    its session id, so that its CPU can be read from /proc (None if it cannot be found)."""
    (work / "dovecot").mkdir(mode=0o711)
    os.chmod(work / "dovecot", 0o711)  # noqa: S103 - the mail user traverses it
    server.start()
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid_file = work / "dovecot" / "srv" / "run" / "master.pid"
        return os.getsid(int(pid_file.read_text().split()[0]))
    return None


def base_problems(why_root: str, mail_user: str) -> list[str]:
    """What stops every benchmark: not root, no Dovecot, no mail user of the test Dovecot."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"run as root ({why_root})")
    if not Path(DOVECOT).exists():
        problems.append(f"{DOVECOT} is missing: {INSTALL_HINT}")
    try:
        pwd.getpwnam(mail_user)
    except KeyError:
        problems.append(f"no user {mail_user}: {INSTALL_HINT}")
    return problems


# --- the run -------------------------------------------------------------------------------------


def interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP end the run as Ctrl-C does (its clean-up runs)."""

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def make_work_dir(prefix: str) -> Path:
    """A fresh work directory in $MAILHAUL_BENCH_DIR (default /var/tmp), also TMPDIR.

    Creating files under /tmp is much slower than elsewhere on the same disk on these machines
    (README.md, "Figures behind the code"), which would swamp every tool's numbers.
    """
    base = os.environ.get("MAILHAUL_BENCH_DIR", "/var/tmp")
    os.environ["TMPDIR"] = base
    tempfile.tempdir = base
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(work, 0o711)  # noqa: S103 - the mail user must reach its Maildirs in here
    return work


def remove_work_dir(work: Path, keep: bool) -> None:
    if keep:
        say(f"bench: work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def write_result(name: str, text: str) -> None:
    """Print a report and write it to bench/results/NAME."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(text)
    say("\n" + text)
    say(f"written to {RESULTS / name}")
