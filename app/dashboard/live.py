"""Live pages: Server-Sent Events from the run listener, and the fragments they refresh.

A page whose ``#live`` region has ``data-live="true"`` opens
``/events`` (one run with ``?run=<id>``, else every run) and, on each event,
fetches its own URL with ``fragment=live`` — just that region, rendered from
the page's ``{% block live %}`` — and swaps it in (``static/dashboard.js``).
Events only say *that* something changed; the fragment is read fresh, so a
missed or merged event costs nothing but latency.

Every open stream parks one web thread, so streams are bounded per process
(``DASHBOARD_MAX_STREAMS``, and they count as waiters of the listener) and
each ends after ``DASHBOARD_STREAM_SECONDS``; the browser then reconnects on
its own, which spreads long-lived pages over the threads. A page refused a
stream (503) falls back to polling.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import abort, current_app, render_template, request
from werkzeug.wrappers import Response

from app.dashboard import dashboard
from app.dashboard.slots import StreamSlots
from app.engine.notify import Listener, Notice, Subscription, TooManyWaiters

FRAGMENT_ARG = "fragment"
LIVE_BLOCK = "live"
MACROS = "_macros.html"
HEARTBEAT_SECONDS = 10.0
COALESCE_SECONDS = 0.25  # notices this close together become one event
MAX_IDS_PER_EVENT = 50


def wants_fragment() -> bool:
    return request.args.get(FRAGMENT_ARG) == LIVE_BLOCK


def render_page(template_name: str, **context: Any) -> str:
    """The whole page, or with ``?fragment=live`` only its ``live`` block.

    A block rendered alone does not see the template's top-level imports, so
    the macros of ``_macros.html`` are put in its context.
    """
    if not wants_fragment():
        return render_template(template_name, **context)
    env = current_app.jinja_env
    template = env.get_template(template_name)
    if LIVE_BLOCK not in template.blocks:
        abort(404)
    current_app.update_template_context(context)
    macros = env.get_template(MACROS).make_module(context)
    names = {name: getattr(macros, name) for name in dir(macros) if not name.startswith("_")}
    block = template.blocks[LIVE_BLOCK]
    return "".join(block(template.new_context({**names, **context})))


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def describe(notices: list[Notice]) -> dict[str, Any]:
    reset = any(n.run_id is None for n in notices)
    changed = list(dict.fromkeys(str(n.run_id) for n in notices if n.run_id is not None))
    return {"runs": changed[:MAX_IDS_PER_EVENT], "reset": reset or len(changed) > MAX_IDS_PER_EVENT}


class EventStream:
    """The response body of one stream; ``close`` (called by the server on
    disconnect or at the end) frees its subscription and its slot even if the
    body was never iterated."""

    def __init__(self, sub: Subscription, slots: StreamSlots, lifetime: float) -> None:
        self.sub = sub
        self.slots = slots
        self.lifetime = lifetime
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        deadline = time.monotonic() + self.lifetime
        yield "retry: 1000\n\n"
        yield sse("hello", {"run": None if self.sub.run_id is None else str(self.sub.run_id)})
        while (left := deadline - time.monotonic()) > 0:
            notices = self.sub.get(min(left, HEARTBEAT_SECONDS))
            if not notices:
                yield ": keep-alive\n\n"  # also finds a client that went away
                continue
            time.sleep(COALESCE_SECONDS)
            notices += self.sub.get(0)
            yield sse("change", describe(notices))
        yield sse("bye", {"reconnect": True})

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sub.close()
            self.slots.release()


def _refuse(message: str) -> Response:
    return Response(message, status=503, mimetype="text/plain", headers={"Retry-After": "5"})


@dashboard.get("/events")
def events() -> Response:
    """``text/event-stream`` of changes: of one run (``?run=<id>``) or of all runs."""
    raw = request.args.get("run")
    run_id: uuid.UUID | None = None
    if raw:
        try:
            run_id = uuid.UUID(raw)
        except ValueError:
            abort(404, f"No run with id {raw!r}.")
    config = current_app.extensions["stepwise_dashboard"]
    slots: StreamSlots = config.streams
    if not slots.acquire():
        return _refuse("too many live pages are open on this server; polling instead")
    listener: Listener = current_app.extensions["stepwise_listener"]
    try:
        sub = listener.subscribe(run_id)
    except TooManyWaiters:
        slots.release()
        return _refuse("too many waiters on this server; polling instead")
    body = EventStream(sub, slots, config.stream_seconds)
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
