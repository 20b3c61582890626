"""Process logging: text or JSON lines on stderr, syslog with facility mail, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import Credentials
from mailhaul.domain.redaction import MASK, Redactor
from mailhaul.logsetup import configure_logging
from mailhaul.services.runlog import RunLog

PASSWORD = "hunter2-Sup3r-secret"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fields():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    logging.getLogger("mailhaul.test").info("polled %d", 3, extra={"account": 7, "run": 42})
    logging.getLogger("mailhaul.test").warning("plain")
    logging.getLogger("mailhaul.test").debug("below the level")
    first, second = json_lines(out)
    assert first["level"] == "info"
    assert first["logger"] == "mailhaul.test"
    assert first["message"] == "polled 3"
    assert first["account"] == 7
    assert first["run"] == 42
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", str(first["ts"]))
    assert second["level"] == "warning"
    assert "account" not in second
    assert "run" not in second


def test_json_lines_include_the_traceback_of_an_exception():
    out = io.StringIO()
    configure_logging("json", "error", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("mailhaul.test").exception("it broke")
    (line,) = json_lines(out)
    assert line["message"] == "it broke"
    assert "RuntimeError: boom" in str(line["exception"])


def test_text_format_is_the_classic_line():
    out = io.StringIO()
    configure_logging("text", "debug", stream=out)
    logging.getLogger("mailhaul.x").debug("hello")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG mailhaul\.x: hello\n", out.getvalue()
    )


def test_configuring_twice_replaces_the_handler():
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", "info", stream=first)
    configure_logging("json", "info", stream=second)
    logging.getLogger("mailhaul").info("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1


def test_a_run_log_never_carries_the_password_into_the_process_log():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    log = RunLog(account_id=5)
    log.hide(Redactor.for_credentials(Credentials("user", PASSWORD)))
    log(f"LOGIN user {PASSWORD}")
    log(f"server said: AUTHENTICATE failed for {PASSWORD!r}")
    text = out.getvalue()
    assert PASSWORD not in text
    assert f"LOGIN user {MASK}" in text
    assert all(line["logger"] == "mailhaul.run" for line in json_lines(out))


@pytest.mark.parametrize(
    ("fmt", "level", "message"),
    [("xml", "info", "log.format"), ("json", "chatty", "log.level")],
)
def test_bad_settings_are_refused(fmt: str, level: str, message: str):
    with pytest.raises(ConfigError, match=message):
        configure_logging(fmt, level, stream=io.StringIO())


def test_a_missing_syslog_socket_is_a_warning(tmp_path: Path):
    out = io.StringIO()
    configure_logging("text", "info", str(tmp_path / "no-such-log"), stream=out)
    assert "does not exist" in out.getvalue()
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("mailhaul").info("still logging")
    assert "still logging" in out.getvalue()


def test_syslog_gets_facility_mail(tmp_path: Path):
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        configure_logging("text", "info", path, stream=io.StringIO())
        assert len(logging.getLogger().handlers) == 2
        logging.getLogger("mailhaul.run").warning("account 3: error: login failed")
        data = server.recv(4096).decode()
    # <PRI> = facility mail (2) * 8 + severity warning (4)
    assert data.startswith("<20>mailhaul[")
    assert "WARNING mailhaul.run: account 3: error: login failed" in data


def test_log_settings(tmp_path: Path):
    from mailhaul.settings import load_settings

    defaults = load_settings(tmp_path, environ={})
    assert (defaults.log_format, defaults.log_level, defaults.log_syslog) == ("text", "info", False)
    (tmp_path / "mailhaul.toml").write_text('[log]\nformat = "json"\nsyslog = true\n')
    settings = load_settings(tmp_path, environ={"MAILHAUL_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level, settings.log_syslog) == ("json", "debug", True)


def test_alembic_internals_stay_out_of_the_log_at_info_and_show_at_debug():
    import io
    import logging

    from mailhaul.logsetup import configure_logging

    out = io.StringIO()
    configure_logging(level="info", stream=out)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
    logging.getLogger("alembic.runtime.migration").warning("a real problem")
    logging.getLogger("mailhaul.test").info("our own news")
    text = out.getvalue()
    assert "setup plugin" not in text
    assert "a real problem" in text and "our own news" in text  # positive controls
    configure_logging(level="debug", stream=out)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin y")
    assert "setup plugin y" in out.getvalue()
