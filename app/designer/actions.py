"""The building blocks of designed workflows: a name, a description, a JSON Schema for params.

Each task block runs through the configured integration (console defaults
with no accounts), once per step and run: sends go through
``deliver_once``, so a redelivered step does not send again. ``sleep`` and
``wait_for_signal`` are the engine's durable waits, not functions.

``http_request`` calls only hosts listed in ``HTTP_ACTION_ALLOWED_HOSTS``
(empty by default, so nothing): any other host — loopback, link-local and
private addresses included — is refused for good, and redirects are not
followed (a listed host cannot bounce the request elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema

from app.engine.definition import StepContext
from app.engine.errors import NonRetryableError
from app.integrations.chat import notifier
from app.integrations.deliveries import deliver_once
from app.integrations.email import EmailMessage, email_sender
from app.integrations.errors import from_status, from_transport
from app.integrations.sms import SmsMessage, sms_sender
from app.settings import Settings, get_settings

RunFunction = Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]
MAX_BODY_TEXT = 2000


class HostNotAllowed(NonRetryableError):
    """``http_request`` to a host that ``HTTP_ACTION_ALLOWED_HOSTS`` does not list."""

    code = "host_not_allowed"


class BadParams(NonRetryableError):
    """A step's params, once its templates were filled in, are not what the block takes."""

    code = "bad_params"


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    params: dict[str, Any]
    # the output fields a later template may name; None: any (a signal's payload, a response)
    outputs: tuple[str, ...] | None
    kind: str = "task"  # task, sleep or signal
    run: RunFunction | None = None
    reusable: bool = False  # declared in code with ``reusable`` rather than built in

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "params": self.params,
                "reusable": self.reusable}


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description, **extra}


def _seconds(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 10 * 365 * 86400, "description": description}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _send_email(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    message = EmailMessage(
        to=str(params["to"]), subject=str(params["subject"]), text=str(params["body"]),
        sender=settings.email_from,
    )
    sender = email_sender(settings)
    delivery = deliver_once(
        run_id=ctx.run_id, idempotency_key=ctx.idempotency_key, channel="email",
        provider=sender.name,
        send=lambda: sender.send(message, idempotency_key=ctx.idempotency_key),
    )
    return {"message_id": delivery.provider_id, "to": message.to, "replayed": delivery.replayed}


def _send_sms(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    message = SmsMessage(to=str(params["to"]), body=str(params["body"]))
    sender = sms_sender(get_settings())
    delivery = deliver_once(
        run_id=ctx.run_id, idempotency_key=ctx.idempotency_key, channel="sms",
        provider=sender.name,
        send=lambda: sender.send(message, idempotency_key=ctx.idempotency_key),
    )
    return {"message_id": delivery.provider_id, "to": message.to, "replayed": delivery.replayed}


def _notify_chat(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    chat = notifier(get_settings())
    text = str(params["text"])
    delivery = deliver_once(
        run_id=ctx.run_id, idempotency_key=ctx.idempotency_key, channel="chat",
        provider=chat.name,
        send=lambda: chat.notify(text, idempotency_key=ctx.idempotency_key),
    )
    return {"notified": True, "replayed": delivery.replayed}


def host_allowed(url: str, settings: Settings) -> bool:
    """Whether ``url`` is http(s) to a host (or host:port) that the deployment lists."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    allowed = settings.http_action_allowed_hosts
    return host in allowed or (port is not None and f"{host}:{port}" in allowed)


def _http_request(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    url = str(params["url"])
    if not host_allowed(url, settings):
        raise HostNotAllowed(
            f"http_request may not call {urlsplit(url).hostname or url!r}: "
            "the host is not in HTTP_ACTION_ALLOWED_HOSTS",
            details={"url": url},
        )
    method = str(params.get("method") or "POST").upper()
    body = params.get("json")
    try:
        response = httpx.request(
            method, url, json=body if method not in ("GET", "HEAD") else None,
            headers={"Idempotency-Key": ctx.idempotency_key},
            timeout=settings.integration_timeout, follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise from_transport("http_request", exc) from exc
    if response.status_code >= 400:
        raise from_status(
            "http_request", response.status_code, response.text[:300],
            retry_after=response.headers.get("Retry-After"),
        )
    try:
        data = response.json() if response.content else None
    except ValueError:
        data = None
    return {"status": response.status_code, "json": data, "text": response.text[:MAX_BODY_TEXT]}


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "send_email",
            "Send an email through the configured provider (console by default).",
            _schema(
                {
                    "to": _text("recipient address, e.g. {{ input.email }}"),
                    "subject": _text("subject line"),
                    "body": _text("plain-text body", format="textarea"),
                },
                ["to", "subject", "body"],
            ),
            outputs=("message_id", "to", "replayed"),
            run=_send_email,
        ),
        Action(
            "send_sms",
            "Send a text message through the configured provider (console by default).",
            _schema(
                {"to": _text("E.164 number, e.g. +14155550100"), "body": _text("message text")},
                ["to", "body"],
            ),
            outputs=("message_id", "to", "replayed"),
            run=_send_sms,
        ),
        Action(
            "notify_chat",
            "Post a message to the team chat webhook (console by default).",
            _schema({"text": _text("message text")}, ["text"]),
            outputs=("notified", "replayed"),
            run=_notify_chat,
        ),
        Action(
            "http_request",
            "Call an HTTP API on a host listed in HTTP_ACTION_ALLOWED_HOSTS.",
            _schema(
                {
                    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                               "default": "POST", "description": "HTTP method"},
                    "url": _text("http(s) URL on an allowed host"),
                    "json": {"type": "object", "description": "JSON body (templates allowed)"},
                },
                ["url"],
            ),
            outputs=None,
            run=_http_request,
        ),
        Action(
            "sleep",
            "Wait durably for a number of seconds (no worker is held).",
            _schema({"seconds": _seconds("how long to wait")}, ["seconds"]),
            outputs=("slept_until",),
            kind="sleep",
        ),
        Action(
            "wait_for_signal",
            "Wait for a signal sent over the API; its payload is the step's output, "
            'or {"timed_out": true} after the timeout.',
            _schema(
                {
                    "signal": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$",
                               "description": "signal name (lower-case, digits, underscores)"},
                    "timeout": _seconds("seconds to wait before timing out (none: forever)"),
                },
                ["signal"],
            ),
            outputs=None,
            kind="signal",
        ),
    )
}


# code-defined blocks, declared with ``reusable`` by the modules in WORKFLOW_MODULES
# (imported by web and worker alike, so both know the same blocks)
_REUSABLE: dict[str, Action] = {}


def reusable(
    name: str, *, params: Mapping[str, Any], outputs: tuple[str, ...] | None = None,
    description: str | None = None,
) -> Callable[[RunFunction], RunFunction]:
    """Offer a code-defined step function to the designer as a building block.

    The function takes ``(ctx, params)``: ``params`` are the step's parameters
    (validated against ``params``, a JSON Schema object, after the templates are
    filled in) and it returns the step's output; ``outputs`` names the fields a
    later step's template may read (None: any). A code workflow can call the
    same function from its own steps, so one implementation serves both.
    """
    if not isinstance(params, Mapping) or params.get("type") != "object":
        raise ValueError(f"block {name!r}: params must be a JSON Schema with type object")
    jsonschema.Draft7Validator.check_schema(dict(params))

    def declare(function: RunFunction) -> RunFunction:
        if name in ACTIONS:
            raise ValueError(f"block {name!r} clashes with a built-in action")
        known = _REUSABLE.get(name)
        if known is not None and getattr(known.run, "__qualname__", None) != function.__qualname__:
            raise ValueError(f"two functions are declared as block {name!r}")
        text = description or (function.__doc__ or name).strip().splitlines()[0]
        _REUSABLE[name] = Action(name, text, dict(params), outputs, run=function, reusable=True)
        return function

    return declare


def find_action(name: object) -> Action | None:
    """The built-in or reusable block called ``name``."""
    if not isinstance(name, str):
        return None
    return ACTIONS.get(name) or _REUSABLE.get(name)


def all_actions() -> list[Action]:
    """Built-in blocks first, then the reusable ones by name."""
    return [*ACTIONS.values(), *sorted(_REUSABLE.values(), key=lambda a: a.name)]
