"""What a server is open to, said at start: a non-loopback address without tokens is a warning.

`keel serve` prints these lines before it starts, and each worker logs them (logger
`keel.serve`) when its app is made, so they land in the server's own log too.
"""

from __future__ import annotations

import ipaddress

from keel.store import Settings


def is_loopback(host: str) -> bool:
    """Whether `host` can only be reached from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def exposure_warnings(host: str, settings: Settings) -> list[str]:
    """The warnings a server listening on `host` with these settings should give at start.

    >>> exposure_warnings("127.0.0.1", Settings(tokens={}))
    []
    >>> exposure_warnings("0.0.0.0", Settings(tokens={}))[0][:62]
    'keel listens on 0.0.0.0, which is not loopback, with no tokens'
    """
    if is_loopback(host):
        return []
    out = []
    if not settings.tokens:
        out.append(
            f"keel listens on {host}, which is not loopback, with no tokens (KEEL_TOKENS is "
            "empty): anyone who can reach it can predict, explain and read the dashboard's "
            "pages, logged inputs included (admin and feedback calls are refused without a "
            "token). Set KEEL_TOKENS (see `keel serve --help` and docs/security.md), or listen "
            "on 127.0.0.1 behind a TLS proxy."
        )
    elif settings.predict_is_open:
        out.append(
            f"keel listens on {host}, which is not loopback, with predict and explain open "
            "to callers without a token (open_predict = true); the other calls need tokens."
        )
    return out
