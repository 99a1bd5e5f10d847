"""Every JSON request body is parsed and vetted once, before any view sees it.

Views, webargs and flask-smorest then work on a body known to be storable:
no NUL characters, no non-finite numbers, no nesting past
``app.json_vetting.MAX_DEPTH``. One ``before_request`` hook does it for
every route, present and future, so no route can forget; the parse is
cached on the request, so ``request.get_json()`` in a view costs nothing more.
A refused body gets the one error shape with a message naming the place.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, request

from app import json_vetting
from app.api.errors import ApiError


class _StrictJson:
    """The ``json_module`` werkzeug's ``Request.get_json`` parses with."""

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return json_vetting.loads(data)


class VettedRequest(Request):
    """Flask's request, whose ``get_json`` parses strictly and explains a refusal."""

    @property
    def json_module(self) -> Any:  # type: ignore[override]
        return _StrictJson

    @json_module.setter
    def json_module(self, _: Any) -> None:
        """Flask assigns ``app.json`` to every request; bodies stay parsed strictly.

        (``app.json`` itself is left alone: it also decodes what the app wrote,
        such as sessions and test-client responses, which need no vetting.)
        """

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, json_vetting.Refused):
            raise ApiError(
                e.status, e.code, e.message, details=json_vetting.details(e.problems)
            )
        raise ApiError(400, "malformed_json", "the request body is not valid JSON")


# An oversized body is read and thrown away up to this many bytes before the 413,
# so the connection stays usable for the client's next request (threaded web
# workers keep connections alive); past it the server closes the connection.
DRAIN_LIMIT = 16 * 1024 * 1024


def drain_oversized_body() -> None:
    """Read what is left of a body declared larger than ``MAX_CONTENT_LENGTH``."""
    length, limit = request.content_length, request.max_content_length
    if length is None or limit is None or length <= limit or length > DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    left = length
    while stream is not None and left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            break
        left -= len(chunk)


def read_whole_body() -> bytes:
    """Read (and cache) the body; 413 when it is over ``MAX_CONTENT_LENGTH``.

    werkzeug stops a body without Content-Length (chunked) at the limit
    without an error, which would turn an oversized body into "malformed
    JSON"; one more byte read past the limit raises the 413 instead.
    """
    drain_oversized_body()  # the 413 below then leaves the connection in step
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        request.stream.read(1)
    return data


def vet_json_body() -> None:
    """``before_request``: a body declared JSON must parse and be storable.

    An empty body is left alone (``POST .../retry`` sent by a client that always
    says ``Content-Type: application/json``); routes that need a body say so.
    """
    if not request.is_json:
        return
    if read_whole_body():
        request.get_json()


def install_json_vetting(app: Flask) -> None:
    """Call after the auth hook: an unauthenticated body is answered 401, unparsed."""
    app.request_class = VettedRequest
    app.before_request(vet_json_body)
