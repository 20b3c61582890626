"""TLS client contexts for sources and delivery alike: verified by default, TLS 1.2 minimum.

``client_context`` builds one; ``shared_context`` reuses it for every connection with the
same CA settings. Building a context reads the CA store, which would be most of a "nothing
new" poll's cost (bench/README.md, "Figures behind the code"). A shared context is rebuilt when its
``ca_file`` changes on disk, when SSL_CERT_FILE/SSL_CERT_DIR change, and after
``CONTEXT_MAX_AGE`` seconds (so updated system CAs reach a long-running service).
"""

from __future__ import annotations

import os
import ssl
import threading
import time

from mailhaul.domain.errors import ConfigError

CONTEXT_MAX_AGE = 600.0
"""Seconds a shared TLS client context is reused before the CAs are read again."""

_ContextKey = tuple[str | None, bool, tuple[str | None, ...]]
_contexts: dict[_ContextKey, tuple[float, tuple[int, int, int] | None, ssl.SSLContext]] = {}
_contexts_lock = threading.Lock()


def client_context(ca_file: str | None, verify: bool = True) -> ssl.SSLContext:
    """A client context: system CAs or ``ca_file``; host name checked.

    With ``verify=False`` neither the chain nor the name is checked (an explicit, logged
    choice of the account's owner). An unreadable CA file is a ``ConfigError``.
    """
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot read CA file {ca_file!r}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _file_stamp(path: str | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def shared_context(ca_file: str | None, verify: bool = True) -> ssl.SSLContext:
    """``client_context(ca_file, verify)``, reused while the CA settings stay the same."""
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    key: _ContextKey = (ca_file, verify, env)
    stamp = _file_stamp(ca_file)
    now = time.monotonic()
    with _contexts_lock:
        cached = _contexts.get(key)
    if cached is not None and cached[1] == stamp and now - cached[0] < CONTEXT_MAX_AGE:
        return cached[2]
    context = client_context(ca_file, verify)  # raises ConfigError for an unreadable CA file
    with _contexts_lock:
        _contexts[key] = (now, stamp, context)
    return context
