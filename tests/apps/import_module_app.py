"""Imports, at import time, the module named in @MODULE@ (template)."""

import json
from wsgiref.validate import validator

import @MODULE@ as mod  # noqa: E402


def app(environ, start_response):
    body = json.dumps({"value": mod.VALUE}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = validator(app)
