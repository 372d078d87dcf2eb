"""Signed webhook messages in the Standard Webhooks scheme (standardwebhooks.com).

A message carries three headers: `webhook-id` (unique per message, the same on every retry),
`webhook-timestamp` (Unix seconds when this attempt was signed) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, space-separated when several). The
key is the secret's bytes: a secret is written `whsec_<base64>`. The hooks dispatcher and the
batch jobs' completion callback both sign with this module; a receiver verifies with
`verify_signature` (or any Standard Webhooks library).

A secret is never printed: `mask_secret` is what listings show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from keel.store.errors import ConfigError, KeelError

PREFIX = "whsec_"
TOLERANCE_S = 300
"""How far a message's timestamp may be from the receiver's clock (replay protection)."""


class SignatureError(KeelError, ValueError):
    """Raised when a webhook message's headers are missing, stale or do not verify."""


def new_secret() -> str:
    """A fresh secret: 32 random bytes, written `whsec_<base64>`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (16 to 128 bytes).

    Raises:
        ConfigError: the secret is not in that form. The message never shows the secret.
    """
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        msg = "The webhook secret does not start with 'whsec_'; expected 'whsec_' followed by base64 of 16 to 128 random bytes (make one with: keel hooks add ... without --secret)."
        raise ConfigError(msg)
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        msg = "The webhook secret after 'whsec_' is not valid base64; expected base64 of 16 to 128 random bytes."
        raise ConfigError(msg) from exc
    if not 16 <= len(key) <= 128:
        msg = f"The webhook secret holds {len(key)} bytes; expected 16 to 128 random bytes."
        raise ConfigError(msg)
    return key


def mask_secret(secret: str) -> str:
    """What a listing shows of a secret: its prefix and last 4 characters."""
    return f"{PREFIX}****{secret[-4:]}" if len(secret) > len(PREFIX) + 8 else f"{PREFIX}****"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one message: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (with the JSON content type)."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> None:
    """Check a received message, as a receiver does (headers matched case-insensitively).

    Raises:
        SignatureError: a header is missing, the timestamp is further than `tolerance_s` from
            `now` (Unix seconds), or no `v1` signature matches.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lowered.get(h)
    ]
    if missing:
        msg = f"The message has no {missing} header(s); expected webhook-id, webhook-timestamp and webhook-signature."
        raise SignatureError(msg)
    try:
        timestamp = int(lowered["webhook-timestamp"])
    except ValueError as exc:
        msg = f"webhook-timestamp is {lowered['webhook-timestamp']!r}; expected Unix seconds."
        raise SignatureError(msg) from exc
    if abs(now - timestamp) > tolerance_s:
        msg = f"webhook-timestamp {timestamp} is {abs(now - timestamp):.0f} s from now; expected within {tolerance_s:g} s (a replayed or delayed message)."
        raise SignatureError(msg)
    expected = sign(secret, lowered["webhook-id"], timestamp, body).encode()
    for given in lowered["webhook-signature"].split():
        if hmac.compare_digest(given.encode(), expected):
            return
    msg = "No webhook-signature matches the body with this secret; the message was altered or signed with another secret."
    raise SignatureError(msg)


def check_url(url: str, what: str = "hook URL") -> str:
    """A delivery URL, checked: http or https, with a host, no credentials in it.

    Raises:
        ConfigError: naming the URL's fault and what is expected.
    """
    if not isinstance(url, str) or not url.strip():
        msg = f"The {what} is empty; expected an http:// or https:// URL such as https://crm.example.com/keel."
        raise ConfigError(msg)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        msg = f"The {what} {url[:200]!r} is not a URL ({exc}); expected e.g. https://crm.example.com/keel."
        raise ConfigError(msg) from exc
    if parts.scheme not in ("http", "https"):
        msg = f"The {what} {url[:200]!r} has the scheme {parts.scheme!r}; expected http or https."
        raise ConfigError(msg)
    if not parts.hostname:
        msg = f"The {what} {url[:200]!r} names no host; expected e.g. https://crm.example.com/keel."
        raise ConfigError(msg)
    if parts.username or parts.password:
        msg = f"The {what} holds a user name or password; expected none (deliveries are signed with the hook's secret instead)."
        raise ConfigError(msg)
    if port == 0:
        msg = f"The {what} {url[:200]!r} has port 0; expected a port from 1 to 65535."
        raise ConfigError(msg)
    return url
