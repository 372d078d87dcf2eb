"""The Standard Webhooks signer and verifier, and the delivery events' shapes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from keel.hooks import Dispatcher, HookEvent, retry_after_s
from keel.store import (
    ConfigError,
    SignatureError,
    check_url,
    mask_secret,
    new_secret,
    secret_key,
    sign,
    signed_headers,
    verify_signature,
)

# the published Standard Webhooks (Svix) test vector: not computed by this code
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class TestSigning:
    def test_matches_the_published_vector(self) -> None:
        """The signature of the spec's example message is the spec's."""
        assert sign(SECRET, MSG, TS, BODY) == SIG

    def test_verifies_its_own_headers_and_one_of_several_signatures(self) -> None:
        """A receiver accepts the headers sent, also among other (rotated) signatures."""
        headers = signed_headers(SECRET, MSG, TS, BODY)
        verify_signature(SECRET, headers, BODY, now=TS + 10)
        headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
        verify_signature(SECRET, {k.upper(): v for k, v in headers.items()}, BODY, now=TS)

    def test_refuses_a_wrong_secret_an_altered_body_and_a_stale_timestamp(self) -> None:
        """Each fault is named."""
        headers = signed_headers(SECRET, MSG, TS, BODY)
        with pytest.raises(SignatureError, match="No webhook-signature matches"):
            verify_signature(new_secret(), headers, BODY, now=TS)
        with pytest.raises(SignatureError, match="No webhook-signature matches"):
            verify_signature(SECRET, headers, BODY + b" ", now=TS)
        with pytest.raises(SignatureError, match="is 301 s from now; expected within 300 s"):
            verify_signature(SECRET, headers, BODY, now=TS + 301)
        with pytest.raises(SignatureError, match=r"no \['webhook-signature'\] header"):
            verify_signature(
                SECRET, {"webhook-id": MSG, "webhook-timestamp": str(TS)}, BODY, now=TS
            )

    def test_secrets_are_made_checked_and_masked(self) -> None:
        """A new secret holds 32 bytes; a short or non-base64 one is refused; a mask shows 4."""
        made = new_secret()
        assert made.startswith("whsec_")
        assert len(secret_key(made)) == 32
        assert mask_secret(made) == "whsec_****" + made[-4:]
        with pytest.raises(ConfigError, match="holds 3 bytes; expected 16 to 128"):
            secret_key("whsec_YWJj")
        with pytest.raises(ConfigError, match="is not valid base64"):
            secret_key("whsec_not base64!")


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("ftp://host/x", "has the scheme 'ftp'; expected http or https"),
            ("file:///etc/passwd", "has the scheme 'file'; expected http or https"),
            ("https://", "names no host"),
            ("https://user:pw@host/x", "holds a user name or password"),
            ("http://host:99999/", "is not a URL"),
            ("", "is empty"),
        ],
    )
    def test_refuses_what_is_not_an_http_url(self, url: str, message: str) -> None:
        """Only http(s) URLs with a host and no credentials are taken."""
        with pytest.raises(ConfigError, match=message):
            check_url(url)

    def test_takes_http_and_https(self) -> None:
        """Both schemes, any port."""
        assert (
            check_url("https://crm.example.com:8443/keel?x=1")
            == "https://crm.example.com:8443/keel?x=1"
        )


class TestBackoff:
    def test_doubles_from_the_base_and_is_capped(self) -> None:
        """5, 10, 20 ... s, never over max_backoff_s; a Retry-After replaces it (capped too)."""
        d = Dispatcher.__new__(Dispatcher)
        d.base_backoff_s, d.max_backoff_s = 5.0, 60.0
        assert [d.backoff_s(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 60.0]
        assert d.backoff_s(1, retry_after=30.0) == 30.0
        assert d.backoff_s(1, retry_after=3600.0) == 60.0

    def test_reads_retry_after_as_seconds_or_a_date(self) -> None:
        """Delta-seconds, an HTTP date (relative to now), or nothing usable."""
        now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
        assert retry_after_s("120", now) == 120.0
        assert retry_after_s("Tue, 01 Jan 2030 00:01:30 GMT", now) == 90.0
        assert retry_after_s("soon", now) is None
        assert retry_after_s(None, now) is None


class TestEvents:
    def test_cloudevents_envelope_is_structured_json(self) -> None:
        """specversion 1.0, id, source, type, time and data, as the spec requires."""
        t = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        event = HookEvent("promoted", "msg_audit_7_promoted", t, "model:fraud", {"version": 3})
        env = json.loads(event.body("cloudevents"))
        assert env == {
            "specversion": "1.0",
            "id": "msg_audit_7_promoted",
            "source": "/keel/model/fraud",
            "type": "io.keel.promoted",
            "subject": "model:fraud",
            "time": "2030-01-01T00:00:00+00:00",
            "datacontenttype": "application/json",
            "data": {"version": 3},
        }
        plain = json.loads(event.body("keel"))
        assert plain == {
            "type": "promoted",
            "timestamp": "2030-01-01T00:00:00+00:00",
            "data": {"version": 3},
        }
