"""SendGrid's v3 mail API through the official client.

The client sets no timeout of its own (a silent server would hold the step
until its hard time limit), so every request carries ``INTEGRATION_TIMEOUT``.
SendGrid takes no idempotency key; the step's key rides along as a custom
argument, so a duplicate can be traced in SendGrid's event data. It goes on
the personalization, where SendGrid's published mail-send schema types
``custom_args`` as an object (at message level the schema says string).
"""

from __future__ import annotations

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

from app.integrations.email import EmailMessage
from app.integrations.errors import (
    from_status,
    from_transport,
    header,
    provider_message,
    secrets_of,
)
from app.settings import Settings

KEY_ARGUMENT = "stepwise_idempotency_key"


class SendGridEmail:
    name = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        assert settings.sendgrid_api_key
        self._client = SendGridAPIClient(
            api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_host.rstrip("/")
        )
        self._timeout = settings.integration_timeout
        self._secrets = secrets_of(settings)

    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        mail = Mail(
            from_email=message.sender,
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.text,
        )
        mail.personalizations[0].add_custom_arg(CustomArg(KEY_ARGUMENT, idempotency_key))
        try:
            response = self._client.client.mail.send.post(
                request_body=mail.get(), timeout=self._timeout
            )
        except HTTPError as exc:
            raise from_status(
                self.name,
                int(exc.status_code),
                provider_message(exc.body),
                retry_after=header(exc.headers, "Retry-After"),
                secrets=self._secrets,
            ) from None
        except OSError as exc:  # refused, reset, timed out (urllib's URLError included)
            raise from_transport(self.name, exc, secrets=self._secrets) from None
        return header(response.headers, "X-Message-Id") or f"sendgrid:{idempotency_key}"
