"""``GET /api/docs``: the OpenAPI document as a plain HTML page.

Rendered on the server from the same spec as ``/api/openapi.json``; no
JavaScript and no assets from elsewhere, so it works on a machine with no
internet access. Schemas are tables of fields (type, required, description),
references are links to the schema they name, and the reST-style backticks
of docstrings become ``<code>``: a reader never sees ``#/components/...``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, render_template_string
from markupsafe import Markup, escape

blp = Blueprint("api_docs_page", __name__)

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ spec.info.title }} API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem} code{background:#f5f5f5}
.m{font-weight:bold;text-transform:uppercase}
table{border-collapse:collapse;margin:.3rem 0} td,th{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}
</style></head><body>
<h1>{{ spec.info.title }} API {{ spec.info.version }}</h1>
<p>Machine-readable: <a href="{{ spec_url }}">{{ spec_url }}</a>. Errors always have the shape
<code>{"error": {"code", "message", "details"}}</code>.
{% if secured %}Send <code>Authorization: Bearer &lt;token&gt;</code> (the deployment's
<code>API_TOKEN</code>) to every <code>/api</code> route (this page and the document can also be
read from a browser signed in to the dashboard).{% else %}This deployment sets no
<code>API_TOKEN</code>: no route needs a token.{% endif %}</p>
{% for path, item in spec.paths.items() %}
{% for method, op in item.items() if method != "parameters" %}
<h2><span class="m">{{ method }}</span> <code>{{ path }}</code></h2>
<p><strong>{{ text(op.summary) }}</strong></p>
{% if op.description %}<p>{{ text(op.description) }}</p>{% endif %}
{% set params = (op.parameters or []) + (item.parameters or []) %}{% if params %}
<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>
{% for p in unique(params) %}<tr><td><code>{{ p.name }}</code></td><td>{{ p["in"] }}</td>
<td>{{ kind(p.schema or {}) }}</td><td>{{ text(p.description) }}</td></tr>{% endfor %}
</table>{% endif %}
{% if op.requestBody %}<p>Request body (JSON): {{ kind(body_schema(op.requestBody)) }}</p>{% endif %}
<table><tr><th>status</th><th>meaning</th><th>body</th></tr>
{% for status, response in op.responses.items() %}<tr><td>{{ status }}</td>
<td>{{ text(response.description) }}</td><td>{{ kind(body_schema(response)) }}</td></tr>
{% endfor %}</table>
{% endfor %}{% endfor %}
<h2>Schemas</h2>
{% for name, schema in spec.components.schemas.items() %}
<h3 id="schema-{{ name }}">{{ name }}</h3>
{% if schema.description %}<p>{{ text(schema.description) }}</p>{% endif %}
{% if schema.properties %}<table><tr><th>field</th><th>type</th><th>required</th>
<th>description</th></tr>
{% for field, prop in schema.properties.items() %}<tr><td><code>{{ field }}</code></td>
<td>{{ kind(prop) }}</td><td>{{ "yes" if field in (schema.required or []) else "no" }}</td>
<td>{{ text(prop.description) }}</td></tr>{% endfor %}</table>{% endif %}
{% endfor %}
</body></html>"""

_BACKTICKS = re.compile(r"`+([^`]+)`+")


def text(value: str | None) -> Markup:
    """Escaped prose, with `code` and ``code`` shown as code."""
    escaped = str(escape(value or ""))
    return Markup(_BACKTICKS.sub(r"<code>\1</code>", escaped))


def kind(schema: dict[str, Any] | None) -> Markup:
    """A schema's type in words; a reference is a link to the named schema."""
    if not schema:
        return Markup("")
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    if schema.get("type") == "array":
        return Markup("array of ") + kind(schema.get("items") or {})
    words = str(schema.get("type", "any"))
    if "format" in schema:
        words += f" ({schema['format']})"
    if "enum" in schema:
        words += ": " + " | ".join(map(str, schema["enum"]))
    if schema.get("nullable"):
        words += " or null"
    return Markup(escape(words))


def body_schema(node: dict[str, Any]) -> dict[str, Any] | None:
    content: dict[str, Any] = (node or {}).get("content") or {}
    return (content.get("application/json") or {}).get("schema")


def unique(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Operation parameters override path parameters of the same name and place."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for p in parameters:
        key = (p.get("name", ""), p.get("in", ""))
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept


@blp.get("/api/docs")
def docs_page() -> str:
    api = current_app.extensions["stepwise_api"]
    spec = api.spec.to_dict()
    return render_template_string(
        TEMPLATE,
        spec=spec,
        spec_url="/api/openapi.json",
        secured=bool(spec.get("components", {}).get("securitySchemes")),
        text=text,
        kind=kind,
        body_schema=body_schema,
        unique=unique,
    )
