"""Enough of an SMTP server (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA) for smtplib.

Given a server-side ``tls`` context it behaves like Amazon SES's SMTP
interface on port 587: it offers STARTTLS, and refuses AUTH and MAIL with
``530 Must issue a STARTTLS command first`` until the session is encrypted.
"""

from __future__ import annotations

import base64
import contextlib
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Received:
    auth: tuple[str, str] | None
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool = False  # the message came over an encrypted session

    def message(self) -> Message:
        return message_from_bytes(self.data)


@dataclass
class FakeSMTP:
    user: str = "mailer"
    password: str = "s3cret-pass"
    received: list[Received] = field(default_factory=list)
    # recipient token -> (code, text) answered to RCPT TO
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None  # offer STARTTLS and require it (as SES does)

    def __post_init__(self) -> None:
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                # a client that refused our certificate hangs up mid-handshake
                with contextlib.suppress(ssl.SSLError, ConnectionError):
                    fake._session(self)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, password: str | None = None) -> str:
        return f"smtp://{self.user}:{password or self.password}@127.0.0.1:{self.port}"

    def start(self) -> FakeSMTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _session(self, h: socketserver.StreamRequestHandler) -> None:
        reply = h.reply  # type: ignore[attr-defined]
        reply("220 fake-smtp ready")
        auth: tuple[str, str] | None = None
        sender, recipients = "", []
        encrypted = False
        while line := h.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-fake-smtp")
                if self.tls is not None and not encrypted:
                    reply("250-STARTTLS")
                reply("250 AUTH PLAIN")
            elif verb == "STARTTLS" and self.tls is not None and not encrypted:
                reply("220 Ready to start TLS")
                h.wfile.flush()
                conn = self.tls.wrap_socket(h.connection, server_side=True)
                h.connection = conn
                h.rfile = conn.makefile("rb")
                h.wfile = conn.makefile("wb", buffering=0)
                encrypted, auth, sender, recipients = True, None, "", []  # RFC 3207: start over
            elif verb in ("AUTH", "MAIL") and self.tls is not None and not encrypted:
                reply("530 Must issue a STARTTLS command first")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                if (user, password) != (self.user, self.password):
                    reply("535 5.7.8 Authentication credentials invalid")
                    continue
                auth = (user, password)
                reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                reply("250 OK")
            elif verb == "RCPT":
                rcpt = command.split(":", 1)[1].strip(" <>")
                refusal = next((r for t, r in self.refuse.items() if t in rcpt), None)
                if refusal:
                    reply(f"{refusal[0]} {refusal[1]}")
                    continue
                recipients.append(rcpt)
                reply("250 OK")
            elif verb == "DATA":
                reply("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while (chunk := h.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.received.append(Received(auth, sender, recipients, data, encrypted))
                reply("250 OK queued")
            elif verb == "QUIT":
                reply("221 Bye")
                return
            else:
                reply("250 OK")
