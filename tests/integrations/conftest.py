from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.providers import FakeSendGrid, FakeStripe, FakeWebhook
from tests.support.fakes.smtp import FakeSMTP


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid().start()
    yield fake
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
