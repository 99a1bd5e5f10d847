"""Twilio's Messages API through the official ``twilio`` client.

The client is pointed at ``TWILIO_API_BASE`` (Twilio's own by default; tests
use a local fake) and given ``INTEGRATION_TIMEOUT``; its own retries stay off,
since the workflow's retry policy owns retries. Twilio's exceptions carry the
status and message but not the headers, so the HTTP client keeps the last
response's headers (per thread) for ``Retry-After``.

Twilio takes no idempotency key on message creation: the ``deliveries`` guard
of the calling step is what keeps a redelivered step from texting twice.
"""

from __future__ import annotations

import threading
from typing import Any

from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from app.integrations.errors import from_status, from_transport, header, secrets_of
from app.integrations.sms import SmsMessage
from app.settings import Settings

# Handed to the client instead of os.environ (which it would read for
# TWILIO_EDGE / TWILIO_REGION and rewrite hosts with): settings own the
# environment, and a region must not redirect requests meant for the fake.
_NO_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}


class _HeaderKeepingClient(TwilioHttpClient):
    """Twilio's requests-based HTTP client, remembering each thread's last headers."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self._local.headers = None
        response = super().request(*args, **kwargs)
        self._local.headers = response.headers
        return response

    @property
    def last_headers(self) -> Any:
        return getattr(self._local, "headers", None)


_lock = threading.Lock()
_clients: dict[tuple[str, str, str, float], tuple[Client, _HeaderKeepingClient]] = {}


def _client(settings: Settings) -> tuple[Client, _HeaderKeepingClient]:
    """One client (one connection pool) per process and configuration."""
    assert settings.twilio_account_sid and settings.twilio_auth_token
    key = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_api_base,
        settings.integration_timeout,
    )
    with _lock:
        found = _clients.get(key)
        if found is None:
            http = _HeaderKeepingClient(settings.integration_timeout)
            client = Client(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                http_client=http,
                environment=_NO_ENVIRONMENT,
            )
            client.api.base_url = settings.twilio_api_base.rstrip("/")
            found = _clients[key] = (client, http)
    return found


class TwilioSms:
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_from
        self._client, self._http = _client(settings)
        self._sender = settings.twilio_from
        self._secrets = secrets_of(settings)

    def _sender_params(self) -> dict[str, str]:
        if self._sender.startswith("MG"):
            return {"messaging_service_sid": self._sender}
        return {"from_": self._sender}

    def send(self, message: SmsMessage, *, idempotency_key: str) -> str:
        try:
            created = self._client.api.v2010.account.messages.create(
                to=message.to, body=message.body, **self._sender_params()
            )
        except TwilioRestException as exc:
            raise self._rejection(exc.status, exc.msg) from None
        except TwilioServiceException as exc:
            raise self._rejection(exc.status, exc.detail or exc.title) from None
        except OSError as exc:  # requests' errors: refused, reset, timed out
            raise from_transport(self.name, exc, secrets=self._secrets) from None
        return str(created.sid)

    def _rejection(self, status: int, text: str | None) -> Exception:
        message = (text or "").removeprefix("Unable to create record: ")
        return from_status(
            self.name,
            int(status),
            message,
            retry_after=header(self._http.last_headers, "Retry-After"),
            secrets=self._secrets,
        )
