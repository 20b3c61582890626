"""Network failures in words a person can act on, not ``[Errno 111] Connection refused``."""

from __future__ import annotations

import errno

_CAUSES = {
    errno.ECONNREFUSED: "nothing is listening on {where} (connection refused)",
    errno.EHOSTUNREACH: "{where} cannot be reached from here (no route to the host)",
    errno.ENETUNREACH: "{where} cannot be reached from here (the network is unreachable)",
    errno.ECONNRESET: "the connection to {where} was reset by the other side",
    errno.ECONNABORTED: "the connection to {where} was aborted",
    errno.EADDRNOTAVAIL: "{where} is not an address this machine can connect to",
}
_RESOLVER = "the host name {host} does not resolve ({why})"


def connect_failure(host: str, port: int, exc: OSError, resolver: bool = False) -> str:
    """Why connecting to ``host:port`` failed, in plain words (``resolver``: the error came
    from the name lookup, as ``socket.gaierror`` does)."""
    where = f"{host}:{port}"
    why = exc.strerror or str(exc) or type(exc).__name__
    if resolver:
        return _RESOLVER.format(host=host, why=why)
    cause = _CAUSES.get(exc.errno or 0)
    return cause.format(where=where) if cause else f"cannot connect to {where}: {why}"


def certificate_hint(verify_message: str) -> str:
    """What to do about a rejected certificate, where the reason says (a self-signed one, an
    unknown issuer, another name, an expired one); "" when nothing helps to add."""
    reason = verify_message.lower()
    if "self-signed" in reason or "self signed" in reason or "local issuer" in reason:
        return (
            "give the CA file that signed it (CA file), or, only for a server you trust, turn "
            "off Verify the certificate"
        )
    if "hostname mismatch" in reason or "not valid for" in reason:
        return "use the host name the certificate is for (the provider documents it)"
    if "expired" in reason:
        return "the server's certificate has expired: its owner has to renew it"
    return ""
