"""Email over SMTP with the standard library (also Amazon SES's SMTP interface).

``SMTP_URL``: ``smtp://user:password@host:port`` (STARTTLS when the server
offers it, as SES does on 587) or ``smtps://...`` (TLS from the first byte,
port 465). Credentials are never sent in clear to another machine: a remote
server that offers no STARTTLS (or a stripped offer) fails the send instead.
The server's certificate is verified against the system's CAs (OpenSSL's
``SSL_CERT_FILE`` adds a private CA). The step's idempotency key becomes the ``Message-ID``, so a
duplicate (see ``deliveries``) carries the same id and mail clients thread or
drop it.
"""

from __future__ import annotations

import email.message
import ipaddress
import smtplib
import ssl
from urllib.parse import unquote, urlsplit

from app.integrations.email import EmailMessage
from app.integrations.errors import from_smtp, from_transport, secrets_of
from app.settings import Settings


def message_id(idempotency_key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "stepwise.localhost"
    return f"<{idempotency_key.replace(':', '.')}@{domain}>"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuses_clear_login(host: str, *, has_credentials: bool, encrypted: bool) -> bool:
    """Logging in without TLS is only allowed to this machine (a local relay or a fake)."""
    return has_credentials and not encrypted and not is_loopback(host)


class SmtpEmail:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_url
        url = urlsplit(settings.smtp_url)
        self._tls = url.scheme == "smtps"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (465 if self._tls else 25)
        self._user = unquote(url.username) if url.username else None
        self._password = unquote(url.password) if url.password else None
        self._timeout = settings.integration_timeout
        self._secrets = secrets_of(settings) + ((self._password,) if self._password else ())

    def _build(self, message: EmailMessage, idempotency_key: str) -> email.message.EmailMessage:
        mime = email.message.EmailMessage()
        mime["From"] = message.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Message-ID"] = message_id(idempotency_key, message.sender)
        mime.set_content(message.text)
        return mime

    def _connect(self) -> smtplib.SMTP:
        if self._tls:
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        client.ehlo()
        encrypted = client.has_extn("starttls")
        if encrypted:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if refuses_clear_login(self._host, has_credentials=bool(self._user), encrypted=encrypted):
            client.close()
            raise smtplib.SMTPNotSupportedError(
                f"{self._host} offers no STARTTLS; not sending the SMTP password in clear"
            )
        return client

    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        mime = self._build(message, idempotency_key)
        try:
            with self._connect() as client:
                if self._user:
                    client.login(self._user, self._password or "")
                client.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise from_smtp(self.name, code, _text(reply), secrets=self._secrets) from None
        except smtplib.SMTPResponseException as exc:
            raise from_smtp(
                self.name, exc.smtp_code, _text(exc.smtp_error), secrets=self._secrets
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise from_smtp(self.name, 502, str(exc), secrets=self._secrets) from None
        except OSError as exc:  # refused, reset, timed out, server hung up
            raise from_transport(self.name, exc, secrets=self._secrets) from None
        return str(mime["Message-ID"])


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
