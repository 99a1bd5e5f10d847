"""Provider fakes as module-scoped fixtures, shared by every test package
(registered in tests/conftest.py through ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.providers import FakeStripe, FakeWebhook, HoldingSendGrid
from tests.support.fakes.smtp import FakeSMTP
from tests.support.fakes.twilio import FakeTwilio


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[HoldingSendGrid]:
    """SendGrid's mail API; it answers at once unless a test sets ``holding``."""
    fake = HoldingSendGrid().start()
    yield fake
    fake.release.set()
    fake.stop()


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def webhook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[FakeSMTP]:
    fake = FakeSMTP().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def twilio_api() -> Iterator[FakeTwilio]:
    """Twilio's Messages API (basic auth, form bodies, Twilio's error codes)."""
    fake = FakeTwilio().start()
    yield fake
    fake.stop()
