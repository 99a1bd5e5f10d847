"""SendGrid, Stripe and chat-webhook fakes: the answers the real APIs give."""

from __future__ import annotations

import hashlib
import threading

from tests.support.fakes.http import FakeHTTPServer, Reply, Seen

SENDGRID_KEY = "SG.fake-key-id.fake-key-secret-0123456789"
STRIPE_KEY = "sk_test_fake0123456789abcdef"


class FakeSendGrid(FakeHTTPServer):
    """``POST /v3/mail/send`` → 202 with an ``X-Message-Id``, as SendGrid answers."""

    def respond(self, seen: Seen) -> Reply:
        if seen.method != "POST" or seen.path != "/v3/mail/send":
            return Reply(404, {"errors": [{"message": "not found", "field": None}]})
        if seen.headers.get("authorization") != f"Bearer {SENDGRID_KEY}":
            return Reply(401, {"errors": [{"message": "The provided authorization grant is "
                                                      "invalid, expired, or revoked"}]})
        message_id = hashlib.sha1(seen.body).hexdigest()[:22]
        return Reply(202, b"", {"X-Message-Id": message_id})


class FakeStripe(FakeHTTPServer):
    """``POST /v1/customers``; a repeated ``Idempotency-Key`` replays the first answer."""

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, Reply] = {}
        self._keys_lock = threading.Lock()

    def respond(self, seen: Seen) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {STRIPE_KEY}":
            return Reply(401, {"error": {"message": "Invalid API Key provided",
                                         "type": "invalid_request_error"}})
        if seen.method != "POST" or seen.path != "/v1/customers":
            return Reply(404, {"error": {"message": "Unrecognized request URL",
                                         "type": "invalid_request_error"}})
        key = seen.headers.get("idempotency-key")
        with self._keys_lock:
            if key and key in self._by_key:
                return self._by_key[key]
            form = seen.form()
            customer_id = "cus_" + hashlib.sha1(seen.body).hexdigest()[:14]
            reply = Reply(200, {"id": customer_id, "object": "customer",
                                "email": form.get("email"), "name": form.get("name"),
                                "livemode": False, "metadata": {}},
                          {"Request-Id": "req_" + customer_id[4:]})
            if key:
                self._by_key[key] = reply
            return reply


class FakeWebhook(FakeHTTPServer):
    """Slack answers ``200 ok``; Discord (``/api/webhooks/...``) answers ``204``, and its
    Slack-compatible endpoint (``/api/webhooks/.../slack``) ``200 ok`` as Slack does."""

    def respond(self, seen: Seen) -> Reply:
        if seen.method != "POST":
            return Reply(405, "method not allowed")
        if seen.path.startswith("/api/webhooks/") and not seen.path.endswith("/slack"):
            return Reply(204, b"")
        return Reply(200, "ok")


class HoldingSendGrid(FakeSendGrid):
    """SendGrid that can hold requests open, so steps sit mid-call for a crash.

    Held requests are answered 503 when released: the provider never accepted
    them, so they are not deliveries.
    """

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held: list[Seen] = []
        self._held_lock = threading.Lock()

    def respond(self, seen: Seen) -> Reply:
        if self.holding.is_set():
            with self._held_lock:
                self.held.append(seen)
            self.release.wait(120)
            return Reply(503, {"errors": [{"message": "service unavailable"}]})
        return super().respond(seen)
