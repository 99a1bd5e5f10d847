"""SMS through the real ``twilio`` client over real HTTP to a local Twilio fake."""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.engine import StepContext
from app.engine.errors import InvalidInput
from app.integrations.errors import REDACTED, IntegrationRejected, IntegrationUnavailable
from app.integrations.sms import ConsoleSms, SmsMessage, sms_sender
from app.settings import ConfigError, Settings, get_settings, load_settings, set_settings
from app.workflows.signup_sms import NoPhone, has_phone, send_welcome_sms
from tests.support.fakes.http import Reply
from tests.support.fakes.twilio import TWILIO_NUMBER, TWILIO_SID, TWILIO_TOKEN, twilio_error

SERVICE_SID = "MG" + "fedcba9876543210" * 2


def token() -> str:
    return uuid.uuid4().hex[:12]


def twilio_settings(base: str, **changes: Any) -> Settings:
    values = {
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from": TWILIO_NUMBER,
        "twilio_api_base": base,
        **changes,
    }
    return get_settings().override(**values)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_without_twilio_settings_sms_goes_to_the_console():
    assert isinstance(sms_sender(Settings()), ConsoleSms)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"TWILIO_ACCOUNT_SID": TWILIO_SID}, "TWILIO_AUTH_TOKEN, TWILIO_FROM must be set"),
        ({"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_FROM must be set"),
        ({"TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": TWILIO_NUMBER}, "TWILIO_ACCOUNT_SID must be"),
    ],
)
def test_half_set_twilio_fails_at_start_naming_what_is_missing(given, missing):
    with pytest.raises(ConfigError, match=missing):
        load_settings(given)
    half = Settings(**{k.lower(): v for k, v in given.items()})
    with pytest.raises(ConfigError, match=missing):
        sms_sender(half)


def test_a_sender_that_is_neither_a_number_nor_a_service_fails_at_start():
    with pytest.raises(ConfigError, match="TWILIO_FROM must be a phone number in E.164"):
        load_settings({"TWILIO_FROM": "Stepwise"})


def test_twilio_gets_basic_auth_and_the_message_as_a_form(twilio_api):
    t = token()
    sender = sms_sender(twilio_settings(twilio_api.url))
    sid = sender.send(SmsMessage(to="+14155550100", body=f"hello {t}"), idempotency_key=t)
    [seen] = twilio_api.requests(t)
    assert seen.method == "POST"
    assert seen.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert seen.form() == {"To": "+14155550100", "From": TWILIO_NUMBER, "Body": f"hello {t}"}
    assert sid.startswith("SM") and len(sid) == 34


def test_a_messaging_service_sid_is_sent_instead_of_a_from_number(twilio_api):
    t = token()
    sender = sms_sender(twilio_settings(twilio_api.url, twilio_from=SERVICE_SID))
    sender.send(SmsMessage(to="+14155550100", body=t), idempotency_key=t)
    [seen] = twilio_api.requests(t)
    assert seen.form()["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in seen.form()


def test_invalid_number_is_rejected_at_once_with_twilios_message(twilio_api):
    t = token()
    with pytest.raises(IntegrationRejected) as caught:
        sms_sender(twilio_settings(twilio_api.url)).send(
            SmsMessage(to="+1", body=t), idempotency_key=t
        )
    assert caught.value.message == "twilio answered 400: The 'To' number +1 is not a valid phone number."
    assert caught.value.details == {"provider": "twilio", "status": 400}


def test_wrong_token_is_rejected_and_never_shown(twilio_api):
    t = token()
    settings = twilio_settings(twilio_api.url, twilio_auth_token="wrong-token-0123456789")
    with pytest.raises(IntegrationRejected, match="twilio answered 401: Authenticate"):
        sms_sender(settings).send(SmsMessage(to="+14155550100", body=t), idempotency_key=t)


def test_the_token_is_redacted_from_an_error_that_echoes_it(twilio_api):
    t = token()
    twilio_api.plan(t, twilio_error(400, 21610, f"bad credentials {TWILIO_TOKEN} for {t}"))
    with pytest.raises(IntegrationRejected) as caught:
        sms_sender(twilio_settings(twilio_api.url)).send(
            SmsMessage(to="+14155550100", body=t), idempotency_key=t
        )
    assert TWILIO_TOKEN not in caught.value.message
    assert f"bad credentials {REDACTED} for {t}" in caught.value.message


def test_rate_limit_is_retryable_after_its_retry_after(twilio_api):
    t = token()
    limited = twilio_error(429, 20429, "Too Many Requests")
    twilio_api.plan(t, Reply(limited.status, limited.body, {"Retry-After": "7"}))
    with pytest.raises(IntegrationUnavailable) as caught:
        sms_sender(twilio_settings(twilio_api.url)).send(
            SmsMessage(to="+14155550100", body=t), idempotency_key=t
        )
    assert caught.value.retry_after == 7.0
    assert caught.value.message == "twilio answered 429: Too Many Requests"


def test_server_error_is_retryable_and_the_next_attempt_succeeds(twilio_api):
    t = token()
    twilio_api.plan(t, twilio_error(503, 20503, "Service Unavailable"))
    sender = sms_sender(twilio_settings(twilio_api.url))
    with pytest.raises(IntegrationUnavailable) as caught:
        sender.send(SmsMessage(to="+14155550100", body=t), idempotency_key=t)
    assert caught.value.retry_after is None
    assert sender.send(SmsMessage(to="+14155550100", body=t), idempotency_key=t).startswith("SM")
    assert len(twilio_api.requests(t)) == 2


def test_unreachable_twilio_is_retryable():
    sender = sms_sender(twilio_settings(closed_port_url()))
    with pytest.raises(IntegrationUnavailable, match="twilio unreachable"):
        sender.send(SmsMessage(to="+14155550100", body="x"), idempotency_key="k")


def test_twilio_that_never_answers_times_out_as_retryable(twilio_api):
    t = token()
    twilio_api.plan(t, Reply(0, hang=True))
    sender = sms_sender(twilio_settings(twilio_api.url, integration_timeout=0.5))
    with pytest.raises(IntegrationUnavailable, match="timed out"):
        sender.send(SmsMessage(to="+14155550100", body=t), idempotency_key=t)


# --- the step body, end to end: a recorded run, the deliveries guard, the fake


@pytest.fixture
def twilio_configured(twilio_api) -> Iterator[None]:
    original = get_settings()
    set_settings(twilio_settings(twilio_api.url))
    yield
    set_settings(original)


@pytest.fixture
def run_with_phone(manager) -> Iterator[tuple[uuid.UUID, dict[str, Any]]]:
    """A real signup run (so deliveries can reference it), cancelled afterwards."""
    t = token()
    data = {"email": f"sms-{t}@example.com", "name": f"Ada {t}", "plan": "pro",
            "phone": "+14155550100"}
    run = manager.start("signup", data).run
    yield run["id"], data
    manager.cancel(run["id"])


def context(run_id: uuid.UUID, data: dict[str, Any], attempt: int = 1) -> StepContext:
    return StepContext(run_id, "signup", "send_welcome_sms", 4, attempt, data, {})


def test_welcome_sms_step_texts_the_signup_once(twilio_configured, twilio_api, run_with_phone):
    run_id, data = run_with_phone
    first = send_welcome_sms(context(run_id, data))
    name = data["name"]
    [seen] = twilio_api.requests(name.split()[1])
    assert seen.form() == {
        "To": "+14155550100",
        "From": TWILIO_NUMBER,
        "Body": f"Welcome to Stepwise, {name}! Your pro account is ready.",
    }
    assert first == {"message_sid": first["message_sid"], "to": "+14155550100", "replayed": False}
    assert first["message_sid"].startswith("SM")
    again = send_welcome_sms(context(run_id, data, attempt=2))  # a redelivery or a retry
    assert again == {**first, "replayed": True}
    assert len(twilio_api.requests(name.split()[1])) == 1


def test_welcome_sms_step_fails_fast_on_a_rejection_and_sends_later_on_retry(
    twilio_configured, twilio_api, run_with_phone
):
    run_id, data = run_with_phone
    t = data["name"].split()[1]
    twilio_api.plan(t, twilio_error(500, 20500, "Internal Server Error"))
    with pytest.raises(IntegrationUnavailable):
        send_welcome_sms(context(run_id, data))
    assert send_welcome_sms(context(run_id, data, attempt=2))["replayed"] is False
    assert len(twilio_api.requests(t)) == 2


def test_welcome_sms_condition_and_guard_without_a_phone():
    data = {"email": "a@example.com", "name": "Ada", "plan": "free"}
    ctx = context(uuid.uuid4(), data)
    assert has_phone(ctx) is False
    assert has_phone(context(uuid.uuid4(), {**data, "phone": "+14155550100"})) is True
    with pytest.raises(NoPhone):
        send_welcome_sms(ctx)


@pytest.mark.parametrize(
    "phone", ["4155550100", "+0155550100", "+1 415 555 0100", "+1415", 14155550100]
)
def test_signup_with_a_phone_not_in_e164_is_invalid_input_naming_phone(manager, phone):
    data = {"email": "a@example.com", "name": "Ada", "plan": "free", "phone": phone}
    with pytest.raises(InvalidInput) as caught:
        manager.start("signup", data)
    assert set(caught.value.details["input"]) == {"phone"}
