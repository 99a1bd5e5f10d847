"""A recording HTTP server on 127.0.0.1 and a free port, in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = b""  # bytes, str, or a JSON-able value
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server stops)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class Seen:
    """One request as the provider would have received it."""

    at: float  # time.time() when it arrived
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class FakeHTTPServer:
    """Subclasses answer in ``respond``; ``plan`` queues failures for matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._plans: dict[str, deque[Reply]] = defaultdict(deque)
        self._released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    at=time.time(),
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                reply = fake._record(seen)
                if reply.hang:
                    fake._released.wait(120)
                    self.close_connection = True
                    return
                body, content_type = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def plan(self, token: str, *replies: Reply) -> None:
        """The next requests whose body contains ``token`` get ``replies``, in order."""
        with self._lock:
            self._plans[token].extend(replies)

    def requests(self, token: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if token is None or token.encode() in s.body]

    def _record(self, seen: Seen) -> Reply:
        with self._lock:
            self._seen.append(seen)
            for token, replies in self._plans.items():
                if replies and token.encode() in seen.body:
                    return replies.popleft()
        return self.respond(seen)

    def respond(self, seen: Seen) -> Reply:
        return Reply(200, {})
