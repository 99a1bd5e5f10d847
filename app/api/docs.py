"""``GET /api/docs``: the OpenAPI document as a plain HTML page.

Rendered on the server from the same spec as ``/api/openapi.json``; no
JavaScript and no assets from elsewhere, so it works on a machine with no
internet access.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, render_template_string

blp = Blueprint("api_docs_page", __name__)

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ spec.info.title }} API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem} code,pre{background:#f5f5f5}
pre{padding:.5rem;overflow-x:auto;font-size:.85rem} .m{font-weight:bold;text-transform:uppercase}
table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
</style></head><body>
<h1>{{ spec.info.title }} API {{ spec.info.version }}</h1>
<p>Machine-readable: <a href="{{ spec_url }}">{{ spec_url }}</a>. Errors always have the shape
<code>{"error": {"code", "message", "details"}}</code>. When <code>API_TOKEN</code> is set, send
<code>Authorization: Bearer &lt;token&gt;</code> to every <code>/api</code> route (this page and the
document can also be read from a browser signed in to the dashboard).</p>
{% for path, item in spec.paths.items() %}
{% for method, op in item.items() if method != "parameters" %}
<h2><span class="m">{{ method }}</span> <code>{{ path }}</code></h2>
<p><strong>{{ op.summary }}</strong></p>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% set params = (item.parameters or []) + (op.parameters or []) %}{% if params %}
<table><tr><th>parameter</th><th>in</th><th>description</th></tr>
{% for p in params %}<tr><td><code>{{ p.name }}</code></td><td>{{ p["in"] }}</td>
<td>{{ p.description or "" }}</td></tr>{% endfor %}</table>{% endif %}
{% if op.requestBody %}<p>Request body:</p><pre>{{ show(op.requestBody) }}</pre>{% endif %}
<p>Responses:</p><table><tr><th>status</th><th>meaning</th></tr>
{% for status, response in op.responses.items() %}<tr><td>{{ status }}</td>
<td>{{ response.description or response["$ref"] }}</td></tr>{% endfor %}</table>
{% endfor %}{% endfor %}
<h2>Schemas</h2>
{% for name, schema in spec.components.schemas.items() %}<h3>{{ name }}</h3>
<pre>{{ show(schema) }}</pre>{% endfor %}
</body></html>"""


def _show(value: Any) -> str:
    return json.dumps(value, indent=2)


@blp.get("/api/docs")
def docs_page() -> str:
    api = current_app.extensions["stepwise_api"]
    return render_template_string(
        TEMPLATE, spec=api.spec.to_dict(), spec_url="/api/openapi.json", show=_show
    )
