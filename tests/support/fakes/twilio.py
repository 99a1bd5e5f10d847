"""Twilio's Messages API, as far as sending one SMS goes.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP basic auth
(the account SID and auth token) and a form body (``To``, ``Body``, and
``From`` or ``MessagingServiceSid``) → 201 with the Message resource, as
Twilio answers. Errors use Twilio's JSON error shape (``code``, ``message``,
``more_info``, ``status``) with Twilio's own error codes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from email.utils import formatdate

from tests.support.fakes.http import FakeHTTPServer, Reply, Seen

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fake-twilio-auth-token-5f1e2d3c"
TWILIO_NUMBER = "+15005550006"

_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def twilio_error(status: int, code: int, message: str) -> Reply:
    return Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio(FakeHTTPServer):
    def respond(self, seen: Seen) -> Reply:
        match = _PATH.match(seen.path.split("?")[0])
        if not self._authenticated(seen):
            return twilio_error(401, 20003, "Authenticate")
        if match is None or match.group(1) != TWILIO_SID:
            return twilio_error(404, 20404, f"The requested resource {seen.path} was not found")
        if seen.method != "POST":
            return twilio_error(405, 20004, "Method not allowed")
        if not seen.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return twilio_error(400, 20001, "form-encoded body required")
        form = seen.form()
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        sid = "SM" + hashlib.sha256(seen.body).hexdigest()[:32]
        now = formatdate(usegmt=True)
        return Reply(
            201,
            {
                "sid": sid,
                "account_sid": TWILIO_SID,
                "messaging_service_sid": service,
                "to": to,
                "from": sender,
                "body": body,
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "price": None,
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json",
            },
        )

    @staticmethod
    def _authenticated(seen: Seen) -> bool:
        scheme, _, encoded = seen.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (TWILIO_SID, TWILIO_TOKEN)
