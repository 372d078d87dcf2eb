"""Stream URLs: which broker, where, and which stream, subject or queue.

- `redis://HOST:PORT/DB?stream=NAME&group=G` (Redis Streams; `group` for a source; optional
  `consumer=C`, default `keel`),
- `nats://HOST:PORT?subject=S&stream=NAME&durable=D` (NATS JetStream; `durable` for a source),
- `amqp://USER:PASS@HOST:PORT/VHOST?queue=Q` (RabbitMQ, a durable queue).

Parsing is pure (no connection); every refusal names the URL part, what it was and what was
expected. Passwords never appear in `Endpoint.shown` (what logs and errors print).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from keel.store import KeelError

__all__ = ["Endpoint", "StreamUrlError", "parse_endpoint"]

_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-*>]+)*$")
_PORTS = {"redis": 6379, "nats": 4222, "amqp": 5672}


class StreamUrlError(KeelError, ValueError):
    """A stream URL keel cannot use."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker destination, parsed from its URL.

    `kind` is redis, nats or amqp; `name` the Redis stream, NATS subject or AMQP queue;
    `stream` the JetStream stream (NATS); `group` the Redis consumer group or NATS durable;
    `consumer` the Redis consumer; `db` the Redis database; `vhost` the AMQP virtual host."""

    kind: str
    host: str
    port: int
    name: str
    group: str | None = None
    stream: str | None = None
    consumer: str = "keel"
    db: int = 0
    vhost: str = "/"
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The URL as logs show it: never the password."""
        where = f"{self.host}:{self.port}"
        if self.kind == "redis":
            return f"redis://{where}/{self.db}?stream={self.name}" + (
                f"&group={self.group}" if self.group else ""
            )
        if self.kind == "nats":
            return f"nats://{where}?subject={self.name}&stream={self.stream}" + (
                f"&durable={self.group}" if self.group else ""
            )
        user = f"{self.user}:***@" if self.user else ""
        return f"amqp://{user}{where}/{quote(self.vhost, safe='')}?queue={self.name}"

    @property
    def identity(self) -> str:
        """What names the messages a source reads (prediction ids are derived from it and the
        message id): the broker's address and the stream/queue and group, no credentials."""
        if self.kind == "redis":
            return f"redis://{self.host}:{self.port}/{self.db}/{self.name}/{self.group}"
        if self.kind == "nats":
            return f"nats://{self.host}:{self.port}/{self.stream}/{self.name}/{self.group}"
        return f"amqp://{self.host}:{self.port}/{quote(self.vhost, safe='')}/{self.name}"

    def amqp_url(self) -> str:
        """The connection URL for aio-pika (no query)."""
        auth = ""
        if self.user is not None:
            auth = quote(self.user, safe="") + (
                ":" + quote(self.password, safe="") if self.password is not None else ""
            )
            auth += "@"
        return f"amqp://{auth}{self.host}:{self.port}/{quote(self.vhost, safe='')}"


def _one(url: str, query: dict[str, list[str]], key: str, required: bool) -> str | None:
    values = query.get(key)
    if not values:
        if required:
            msg = f"The stream URL {_safe(url)!r} has no {key}=; expected one, e.g. ?{key}=NAME."
            raise StreamUrlError(msg)
        return None
    if len(values) > 1:
        msg = f"The stream URL {_safe(url)!r} names {key}= {len(values)} times; expected once."
        raise StreamUrlError(msg)
    value = values[0]
    pattern = _SUBJECT if key == "subject" else _NAME
    if not pattern.match(value):
        msg = (
            f"The stream URL's {key} is {value!r}; expected letters, digits, '_', '-', '.' "
            f"or ':' (at most 200){', dot-separated tokens' if key == 'subject' else ''}."
        )
        raise StreamUrlError(msg)
    return value


def _safe(url: str) -> str:
    """A URL with its password replaced (for error messages)."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def parse_endpoint(url: str, *, source: bool) -> Endpoint:
    """Parse a stream URL; `source` requires what reading needs (a Redis group, a NATS durable).

    >>> parse_endpoint("redis://127.0.0.1:6379/0?stream=tx&group=g", source=True).name
    'tx'
    >>> parse_endpoint("amqp://guest:pw@localhost/%2F?queue=q", source=False).shown
    'amqp://guest:***@localhost:5672/%2F?queue=q'

    Raises:
        StreamUrlError: an unknown scheme, a missing or malformed part.
    """
    if not isinstance(url, str) or len(url) > 2000:
        msg = "A stream URL is a string of at most 2000 characters."
        raise StreamUrlError(msg)
    parts = urlsplit(url)
    kind = parts.scheme.lower()
    if kind not in _PORTS:
        msg = (
            f"The stream URL {_safe(url)!r} has the scheme {parts.scheme!r}; expected redis://, "
            "nats:// or amqp:// (Kafka is not provided: no broker to test it against)."
        )
        raise StreamUrlError(msg)
    try:
        port = parts.port or _PORTS[kind]
    except ValueError as exc:
        msg = f"The stream URL {_safe(url)!r} has a port that is not a number from 1 to 65535."
        raise StreamUrlError(msg) from exc
    host = parts.hostname or "127.0.0.1"
    query = parse_qs(parts.query, keep_blank_values=True)
    known = {
        "redis": {"stream", "group", "consumer"},
        "nats": {"subject", "stream", "durable"},
        "amqp": {"queue"},
    }[kind]
    unknown = sorted(set(query) - known)
    if unknown:
        msg = f"The stream URL {_safe(url)!r} has the parameters {unknown}, unknown to {kind}://; expected some of {sorted(known)}."
        raise StreamUrlError(msg)
    if kind == "redis":
        return _redis(url, parts.path, host, port, query, source)
    if kind == "nats":
        return Endpoint(
            "nats",
            host,
            port,
            name=str(_one(url, query, "subject", True)),
            stream=_one(url, query, "stream", True),
            group=_one(url, query, "durable", source),
        )
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return Endpoint(
        "amqp",
        host,
        port,
        name=str(_one(url, query, "queue", True)),
        vhost=vhost,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _redis(
    url: str, path: str, host: str, port: int, query: dict[str, list[str]], source: bool
) -> Endpoint:
    db_text = path.strip("/") or "0"
    if not db_text.isdigit() or int(db_text) > 10_000:
        msg = f"The stream URL {_safe(url)!r} names the database {db_text!r}; expected a number such as /0."
        raise StreamUrlError(msg)
    return Endpoint(
        "redis",
        host,
        port,
        name=str(_one(url, query, "stream", True)),
        group=_one(url, query, "group", source),
        consumer=_one(url, query, "consumer", False) or "keel",
        db=int(db_text),
    )
