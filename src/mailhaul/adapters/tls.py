"""TLS client contexts: verified by default, TLS 1.2 minimum."""

from __future__ import annotations

import ssl

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import SourceEndpoint


def client_context(endpoint: SourceEndpoint) -> ssl.SSLContext:
    """A client context for ``endpoint``: system CAs or its ``ca_file``; host name checked.

    With ``verify_cert=False`` neither the chain nor the name is checked (an explicit,
    logged choice of the account's owner).
    """
    try:
        context = ssl.create_default_context(cafile=endpoint.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot read CA file {endpoint.ca_file!r}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not endpoint.verify_cert:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
