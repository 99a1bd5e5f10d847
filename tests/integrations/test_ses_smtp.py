"""Email through an SES-style SMTP interface: STARTTLS on 587, then AUTH, as AWS documents.

The fake speaks STARTTLS with a certificate from a throw-away CA (trustme);
the client trusts it the way a deployment trusts a private CA, through
OpenSSL's ``SSL_CERT_FILE``, so the real verification path is exercised.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme

from app.integrations.email import EmailMessage, email_sender
from app.integrations.errors import REDACTED, IntegrationRejected, IntegrationUnavailable
from app.integrations.smtp_email import SmtpEmail, refuses_clear_login
from app.settings import Settings, load_settings
from tests.support.fakes.smtp import FakeSMTP

# SES SMTP passwords are base64-like: '/' and '+' must be percent-encoded in the URL
SES_USER = "AKIAIOSFODNN7EXAMPLE"
SES_PASSWORD = "BPg2/uMNb+Y8xXq9Kw3Zr0hTa5Vs1dEeFfGgHhIiJjKk"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ses(ca: trustme.CA) -> Iterator[FakeSMTP]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    fake = FakeSMTP(user=SES_USER, password=SES_PASSWORD, tls=context).start()
    yield fake
    fake.stop()


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def ses_url(fake: FakeSMTP, password: str = SES_PASSWORD) -> str:
    return f"smtp://{SES_USER}:{quote(password, safe='')}@localhost:{fake.port}"


def message(to: str) -> EmailMessage:
    return EmailMessage(to=to, subject="Welcome", text="Hello over TLS", sender="team@example.com")


def test_ses_style_smtp_url_upgrades_to_tls_before_logging_in(ses, trust_ca):
    settings = load_settings({"SMTP_URL": ses_url(ses), "EMAIL_FROM": "team@example.com"})
    sender = email_sender(settings)
    assert isinstance(sender, SmtpEmail)
    message_id = sender.send(message("ses-1@example.com"), idempotency_key="run-1:send")
    [received] = [r for r in ses.received if r.recipients == ["ses-1@example.com"]]
    assert received.tls is True
    assert received.auth == (SES_USER, SES_PASSWORD)  # the percent-encoded password, decoded
    assert received.message()["Message-ID"] == message_id == "<run-1.send@example.com>"
    assert received.message().get_payload().strip() == "Hello over TLS"


def test_a_certificate_the_client_does_not_trust_is_retryable_and_sends_nothing(ses):
    before = len(ses.received)
    with pytest.raises(IntegrationUnavailable, match="smtp unreachable: .*CERTIFICATE_VERIFY_FAILED"):
        email_sender(Settings(smtp_url=ses_url(ses))).send(
            message("ses-2@example.com"), idempotency_key="k"
        )
    assert len(ses.received) == before


def test_wrong_smtp_credentials_fail_fast_and_stay_hidden(ses, trust_ca):
    with pytest.raises(IntegrationRejected) as caught:
        email_sender(Settings(smtp_url=ses_url(ses, "wrong/pass+word"))).send(
            message("ses-3@example.com"), idempotency_key="k"
        )
    assert caught.value.message == "smtp answered 535: 5.7.8 Authentication credentials invalid"
    assert "wrong" not in caught.value.message and REDACTED not in caught.value.message


def test_credentials_go_in_clear_only_to_this_machine():
    assert refuses_clear_login("email-smtp.eu-west-1.amazonaws.com", has_credentials=True,
                               encrypted=False)
    assert not refuses_clear_login("email-smtp.eu-west-1.amazonaws.com", has_credentials=True,
                                   encrypted=True)
    assert not refuses_clear_login("127.0.0.1", has_credentials=True, encrypted=False)
    assert not refuses_clear_login("localhost", has_credentials=True, encrypted=False)
    assert not refuses_clear_login("relay.internal", has_credentials=False, encrypted=False)
