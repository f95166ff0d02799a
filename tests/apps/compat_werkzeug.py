"""A Werkzeug application (Debian's python3-werkzeug): the routes of
compat_common.py (GET /file with werkzeug.utils.send_file()), plus

    GET /wrapped the file named by environ["COMPAT_FILE"] (wsgi_var), sent
                 with werkzeug.wsgi.wrap_file(), which hands it to
                 wsgi.file_wrapper; X-Wrapper names the iterable's type
    GET /stream  a generator response, STREAM_CHUNKS chunks of STREAM_CHUNK
                 bytes (chunk i is bytes([i]) * STREAM_CHUNK)
"""

import hashlib
import json
import os

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect, send_file
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from compat_common import big_body

BIG = big_body()
STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 40

url_map = Map([
    Rule("/", endpoint="index"),
    Rule("/hello/<name>", endpoint="hello"),
    Rule("/form", endpoint="form", methods=["POST"]),
    Rule("/json", endpoint="json", methods=["POST"]),
    Rule("/redirect", endpoint="redirect"),
    Rule("/cookie/set", endpoint="cookie_set"),
    Rule("/cookie/get", endpoint="cookie_get"),
    Rule("/boom", endpoint="boom"),
    Rule("/big", endpoint="big"),
    Rule("/upload", endpoint="upload", methods=["POST"]),
    Rule("/file", endpoint="file"),
    Rule("/wrapped", endpoint="wrapped"),
    Rule("/stream", endpoint="stream"),
])


def on_index(request, urls):
    return Response("index werkzeug")


def on_hello(request, urls, name):
    greeting = request.args.get("greeting", "Hello")
    return Response(f"{greeting}, {name}!")


def on_form(request, urls):
    return Response(f"a={request.form['a']} b={request.form['b']}")


def on_json(request, urls):
    doc = request.get_json()
    return Response(json.dumps({"got": doc, "keys": len(doc)}),
                    mimetype="application/json")


def on_redirect(request, urls):
    # MapAdapter.build() puts SCRIPT_NAME in front
    return redirect(urls.build("hello", {"name": "there"}))


def on_cookie_set(request, urls):
    resp = Response("set")
    resp.set_cookie("flavour", "oatmeal", path=request.script_root + "/")
    return resp


def on_cookie_get(request, urls):
    return Response("flavour=" + request.cookies.get("flavour", "none"))


def on_boom(request, urls):
    raise RuntimeError("boom")


def on_big(request, urls):
    return Response(BIG, mimetype="application/octet-stream")


def on_upload(request, urls):
    f = request.files["file"]
    data = f.read()
    return Response("%d %s %s %s" % (len(data),
                                     hashlib.sha256(data).hexdigest(),
                                     f.filename, request.form["note"]))


def on_file(request, urls):
    # wrap_file() inside, and conditional and range answers of its own
    return send_file(request.environ["COMPAT_FILE"], request.environ,
                     mimetype="application/octet-stream")


def on_wrapped(request, urls):
    f = open(request.environ["COMPAT_FILE"], "rb")
    body = wrap_file(request.environ, f)
    resp = Response(body, mimetype="application/octet-stream",
                    direct_passthrough=True)
    resp.content_length = os.fstat(f.fileno()).st_size
    resp.headers["X-Wrapper"] = type(body).__module__ + "." + \
        type(body).__qualname__
    return resp


def on_stream(request, urls):
    def chunks():
        for i in range(STREAM_CHUNKS):
            yield bytes([i]) * STREAM_CHUNK

    return Response(chunks(), mimetype="application/octet-stream",
                    direct_passthrough=True)


@Request.application
def application(request):
    urls = url_map.bind_to_environ(request.environ)
    try:
        endpoint, args = urls.match()
        return globals()["on_" + endpoint](request, urls, **args)
    except HTTPException as e:
        return e
