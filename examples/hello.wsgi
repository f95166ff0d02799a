# The example `make run` serves: a page showing the request as the
# application sees it (method, path, query, headers) and the full WSGI
# environ, plus two forms posting back to this page to show the request
# body.  Wrapped in wsgiref.validate, so any PEP 3333 violation by the
# server in the environ, wsgi.input, wsgi.errors or in how it drives the
# response raises here.

import html
import os
import sys
import urllib.parse
import wsgiref.validate


PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Hello from nginx mod_wsgi</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left;
          vertical-align: top; }}
th {{ background: #eee; }}
td {{ font-family: monospace; white-space: pre-wrap;
      word-break: break-all; }}
</style>
</head>
<body>
<h1>Hello from nginx mod_wsgi</h1>
<p>Python {python}, worker pid {pid}.</p>

<h2>Request</h2>
{request}

{body}

<h2>Forms</h2>
<form method="post" action="{action}">
<p><textarea name="text" rows="3" cols="60">Hello, world!</textarea></p>
<p><input type="submit" value="POST urlencoded"></p>
</form>
<form method="post" action="{action}" enctype="multipart/form-data">
<p><input type="file" name="file">
<input type="submit" value="POST multipart"></p>
</form>

<h2>Headers</h2>
{headers}

<h2>environ</h2>
{environ}
</body>
</html>
"""


def table(rows, head=None):
    out = ["<table>"]

    if head:
        out.append("<tr>%s</tr>"
                   % "".join("<th>%s</th>" % html.escape(h) for h in head))

    for name, value in rows:
        out.append("<tr><th>%s</th><td>%s</td></tr>"
                   % (html.escape(name), html.escape(value)))

    out.append("</table>")
    return "\n".join(out)


def wsgi_str(s):
    # PEP 3333 "native strings" carry bytes as latin-1; show them as the
    # UTF-8 the client most likely sent.
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0

    if length <= 0:
        return b""

    # The validator insists on read() with a size argument.
    return environ["wsgi.input"].read(length)


def show_body(environ, body):
    if environ["REQUEST_METHOD"] != "POST":
        return ""

    rows = [("Content-Type", environ.get("CONTENT_TYPE", "")),
            ("Content-Length", environ.get("CONTENT_LENGTH", "")),
            ("bytes read", str(len(body)))]

    ctype = environ.get("CONTENT_TYPE", "")

    if ctype.startswith("application/x-www-form-urlencoded"):
        for name, value in urllib.parse.parse_qsl(body.decode("latin-1"),
                                                  keep_blank_values=True):
            rows.append(("field " + wsgi_str(name), wsgi_str(value)))

    return "<h2>Posted body</h2>\n" + table(rows)


def show_value(value):
    if isinstance(value, str):
        return value

    # Show the server's wsgi.input and wsgi.errors, not the validator's
    # wrappers around them.
    if isinstance(value, wsgiref.validate.InputWrapper):
        value = value.input
    elif isinstance(value, wsgiref.validate.ErrorWrapper):
        value = value.errors

    return repr(value)


def hello(environ, start_response):
    body = read_body(environ)

    path = wsgi_str(environ.get("SCRIPT_NAME", "")
                    + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")

    request = [("method", environ["REQUEST_METHOD"]),
               ("path", path),
               ("query", wsgi_str(query)),
               ("protocol", environ.get("SERVER_PROTOCOL", "")),
               ("client", "%s:%s" % (environ.get("REMOTE_ADDR", ""),
                                     environ.get("REMOTE_PORT", "")))]

    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        request.append(("query " + wsgi_str(name), wsgi_str(value)))

    headers = []
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            headers.append((key.replace("_", "-").title(), environ[key]))

    for key, value in sorted(environ.items()):
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(),
                            wsgi_str(value)))

    env = [(key, show_value(value)) for key, value in sorted(environ.items())]

    page = PAGE.format(
        python=html.escape(sys.version.split()[0]),
        pid=os.getpid(),
        request=table(request),
        body=show_body(environ, body),
        action=html.escape(urllib.parse.quote(path or "/"), quote=True),
        headers=table(headers),
        environ=table(env, head=("key", "value")))

    out = page.encode("utf-8")

    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(out)))])
    return [out]


application = wsgiref.validate.validator(hello)
