"""Each provider, in this process: the real client over real sockets to a local fake."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import parse_qsl

import pytest

from app.integrations.billing import ConsoleBilling, billing_provider
from app.integrations.chat import ConsoleNotifier, notifier
from app.integrations.email import ConsoleEmail, EmailMessage, email_sender
from app.integrations.errors import REDACTED, IntegrationRejected, IntegrationUnavailable
from app.integrations.stripe_billing import STRIPE_API_VERSION
from app.integrations.webhook_chat import webhook_format
from app.settings import Settings
from tests.support.fakes.http import Reply
from tests.support.fakes.providers import SENDGRID_KEY, STRIPE_KEY
from tests.support.provider_schemas import decode_form, violations


def token() -> str:
    return uuid.uuid4().hex[:12]


def message(to: str) -> EmailMessage:
    return EmailMessage(to=to, subject="Welcome", text="Hello there", sender="team@stepwise.test")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_without_accounts_every_integration_is_the_console_default():
    settings = Settings()
    assert isinstance(email_sender(settings), ConsoleEmail)
    assert isinstance(billing_provider(settings), ConsoleBilling)
    assert isinstance(notifier(settings), ConsoleNotifier)


def test_sendgrid_receives_the_key_recipient_text_and_idempotency_key(sendgrid):
    t = token()
    settings = Settings(sendgrid_api_key=SENDGRID_KEY, sendgrid_api_host=sendgrid.url)
    sender = email_sender(settings)
    message_id = sender.send(message(f"{t}@example.com"), idempotency_key=f"run:{t}")
    [seen] = sendgrid.requests(t)
    assert seen.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    body = seen.json()
    assert body["personalizations"][0]["to"] == [{"email": f"{t}@example.com"}]
    assert body["from"] == {"email": "team@stepwise.test"}
    assert body["content"] == [{"type": "text/plain", "value": "Hello there"}]
    assert body["personalizations"][0]["custom_args"] == {"stepwise_idempotency_key": f"run:{t}"}
    assert "custom_args" not in body  # a string at message level, in SendGrid's schema
    assert violations("sendgrid_mail_send", body) == []
    assert message_id and not message_id.startswith("sendgrid:")


def test_the_mail_send_schema_rejects_what_sendgrid_would():
    """The vendored schema is no rubber stamp: the old body shape and sender fail it."""
    body = {
        "from": {"email": "stepwise@localhost"},
        "subject": "Welcome",
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "content": [{"type": "text/plain", "value": "Hello"}],
        "custom_args": {"stepwise_idempotency_key": "run:1"},
    }
    assert violations("sendgrid_mail_send", body) == [
        "custom_args: {'stepwise_idempotency_key': 'run:1'} is not of type 'string'",
        "from/email: 'stepwise@localhost' is not a 'email'",
    ]


def test_default_sender_is_an_address_sendgrid_accepts(sendgrid):
    t = token()
    settings = Settings(sendgrid_api_key=SENDGRID_KEY, sendgrid_api_host=sendgrid.url)
    email_sender(settings).send(
        EmailMessage(to=f"{t}@example.com", subject="Hi", text="Hello", sender=settings.email_from),
        idempotency_key=t,
    )
    [seen] = sendgrid.requests(t)
    assert violations("sendgrid_mail_send", seen.json()) == []


def test_sendgrid_rejection_carries_the_message_without_the_key(sendgrid):
    t = token()
    sendgrid.plan(t, Reply(400, {"errors": [{"message": f"bad key {SENDGRID_KEY} for sender"}]}))
    settings = Settings(sendgrid_api_key=SENDGRID_KEY, sendgrid_api_host=sendgrid.url)
    with pytest.raises(IntegrationRejected) as caught:
        email_sender(settings).send(message(f"{t}@example.com"), idempotency_key=t)
    assert caught.value.message == f"sendgrid answered 400: bad key {REDACTED} for sender"


def test_sendgrid_that_never_answers_times_out_as_retryable(sendgrid):
    t = token()
    sendgrid.plan(t, Reply(0, hang=True))
    settings = Settings(
        sendgrid_api_key=SENDGRID_KEY, sendgrid_api_host=sendgrid.url, integration_timeout=0.5
    )
    began = time.monotonic()
    with pytest.raises(IntegrationUnavailable, match="timed out"):
        email_sender(settings).send(message(f"{t}@example.com"), idempotency_key=t)
    assert 0.4 < time.monotonic() - began < 3


def test_unreachable_provider_is_retryable():
    settings = Settings(sendgrid_api_key=SENDGRID_KEY, sendgrid_api_host=closed_port_url())
    with pytest.raises(IntegrationUnavailable, match="sendgrid unreachable"):
        email_sender(settings).send(message("x@example.com"), idempotency_key="k")


def test_stripe_customer_is_created_once_per_idempotency_key(stripe_api):
    t = token()
    settings = Settings(stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_api.url)
    billing = billing_provider(settings)
    first = billing.create_customer(email=f"{t}@example.com", name="Ada", idempotency_key=f"r:{t}")
    again = billing.create_customer(email=f"{t}@example.com", name="Ada", idempotency_key=f"r:{t}")
    assert first == again and first.startswith("cus_")
    seen = stripe_api.requests(t)
    assert len(seen) == 2
    assert {s.headers["idempotency-key"] for s in seen} == {f"r:{t}"}
    assert seen[0].headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert seen[0].form()["email"] == f"{t}@example.com"
    assert seen[0].form()["name"] == "Ada"


def test_stripe_request_conforms_to_stripes_create_customer_schema(stripe_api):
    t = token()
    settings = Settings(stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_api.url)
    billing_provider(settings).create_customer(
        email=f"{t}@example.com", name="Ada Lovelace", idempotency_key=f"run-{t}:provision_plan"
    )
    [seen] = stripe_api.requests(t)
    assert (seen.method, seen.path) == ("POST", "/v1/customers")
    assert seen.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert 1 <= len(seen.headers["idempotency-key"]) <= 255
    assert seen.headers["stripe-version"] == STRIPE_API_VERSION  # the client's pinned version
    form = decode_form(parse_qsl(seen.body.decode(), keep_blank_values=True))
    assert form == {"email": f"{t}@example.com", "name": "Ada Lovelace",
                    "metadata": {"stepwise_key": f"run-{t}:provision_plan"}}
    assert violations("stripe_post_customers", form) == []
    assert violations("stripe_post_customers", {**form, "plan": "pro"}) == [
        "(body): Additional properties are not allowed ('plan' was unexpected)"
    ]


def test_stripe_rate_limit_is_retryable_after_its_retry_after(stripe_api):
    t = token()
    stripe_api.plan(t, Reply(429, {"error": {"message": "Too many requests", "type": "rate_limit"}},
                             {"Retry-After": "3"}))
    billing = billing_provider(Settings(stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_api.url))
    with pytest.raises(IntegrationUnavailable) as caught:
        billing.create_customer(email=f"{t}@example.com", name="Ada", idempotency_key=t)
    assert caught.value.retry_after == 3.0
    assert len(stripe_api.requests(t)) == 1  # the client's own retries are off


def test_stripe_invalid_request_is_not_retryable(stripe_api):
    t = token()
    stripe_api.plan(t, Reply(400, {"error": {"message": "Invalid email address: nope",
                                             "type": "invalid_request_error"}}))
    billing = billing_provider(Settings(stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_api.url))
    with pytest.raises(IntegrationRejected, match="stripe answered 400: Invalid email address"):
        billing.create_customer(email=f"{t}@example.com", name="Ada", idempotency_key=t)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/services/T0/B0/secret", {}),
        ("/api/webhooks/123/secret", {"allowed_mentions": {"parse": []}}),
    ],
)
def test_chat_webhooks_get_the_body_their_service_expects(webhook, path, extra):
    t = token()
    settings = Settings(notify_webhook_url=webhook.url + path)
    notifier(settings).notify(f"New signup {t}", idempotency_key=t)
    [seen] = webhook.requests(t)
    assert seen.path == path
    field = "content" if extra else "text"
    assert seen.json() == {field: f"New signup {t}", **extra}


def test_webhook_format_setting_overrides_the_url():
    assert webhook_format("https://chat.example/hooks/abc", "discord") == "discord"
    assert webhook_format("https://discord.com/api/webhooks/1/x") == "discord"
    assert webhook_format("https://hooks.slack.com/services/T/B/x") == "slack"
    assert webhook_format("https://discord.com/api/webhooks/1/x/slack") == "slack"


def test_chat_rejection_hides_the_webhook_path(webhook):
    t = token()
    webhook.plan(t, Reply(404, f"no_service for /services/T0/B0/{t}-path"))
    settings = Settings(notify_webhook_url=f"{webhook.url}/services/T0/B0/{t}-path")
    with pytest.raises(IntegrationRejected) as caught:
        notifier(settings).notify(f"hello {t}", idempotency_key=t)
    assert f"{t}-path" not in caught.value.message
    assert caught.value.message.startswith("slack answered 404: no_service")


def test_smtp_logs_in_and_delivers_with_a_message_id_from_the_key(smtp_server):
    t = token()
    settings = Settings(smtp_url=smtp_server.url())
    message_id = email_sender(settings).send(
        message(f"{t}@example.com"), idempotency_key=f"run-{t}:send_welcome_email"
    )
    [received] = [r for r in smtp_server.received if f"{t}@example.com" in r.recipients]
    assert received.auth == (smtp_server.user, smtp_server.password)
    assert received.sender == "team@stepwise.test"
    mail = received.message()
    assert mail["Subject"] == "Welcome"
    assert mail["Message-ID"] == message_id == f"<run-{t}.send_welcome_email@stepwise.test>"
    assert mail.get_payload().strip() == "Hello there"


def test_smtp_permanent_refusal_fails_and_transient_one_retries(smtp_server):
    t1, t2 = token(), token()
    smtp_server.refuse[t1] = (550, "5.1.1 no such user")
    smtp_server.refuse[t2] = (451, "4.3.0 try again later")
    sender = email_sender(Settings(smtp_url=smtp_server.url()))
    with pytest.raises(IntegrationRejected, match="smtp answered 550: 5.1.1 no such user"):
        sender.send(message(f"{t1}@example.com"), idempotency_key=t1)
    with pytest.raises(IntegrationUnavailable, match="smtp answered 451"):
        sender.send(message(f"{t2}@example.com"), idempotency_key=t2)


def test_smtp_wrong_password_is_not_retried_and_not_revealed(smtp_server):
    sender = email_sender(Settings(smtp_url=smtp_server.url(password="wrong-pass")))
    with pytest.raises(IntegrationRejected) as caught:
        sender.send(message("x@example.com"), idempotency_key="k")
    assert "535" in caught.value.message and "wrong-pass" not in caught.value.message
