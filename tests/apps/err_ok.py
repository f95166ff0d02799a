"""A plain valid application (tests/test_errors.py): the "next request"."""

import os
import wsgiref.validate


def raw_application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok pid=%d" % os.getpid()]


application = wsgiref.validate.validator(raw_application)
