"""A Pyramid application (Debian's python3-pyramid): the routes of
compat_common.py, with a Configurator, routes and view callables."""

import hashlib

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import FileResponse, Response

from compat_common import big_body

BIG = big_body()


def index(request):
    return Response("index pyramid", content_type="text/plain")


def hello(request):
    greeting = request.params.get("greeting", "Hello")
    name = request.matchdict["name"]
    return Response(f"{greeting}, {name}!", content_type="text/plain")


def form(request):
    return Response(f"a={request.POST['a']} b={request.POST['b']}",
                    content_type="text/plain")


def json_post(request):
    doc = request.json_body
    return {"got": doc, "keys": len(doc)}


def redirect(request):
    # route_url() starts with request.application_url, SCRIPT_NAME included
    return HTTPFound(location=request.route_url("hello", name="there"))


def cookie_set(request):
    resp = Response("set", content_type="text/plain")
    resp.set_cookie("flavour", "oatmeal", path=request.script_name + "/")
    return resp


def cookie_get(request):
    return Response("flavour=" + request.cookies.get("flavour", "none"),
                    content_type="text/plain")


def boom(request):
    raise RuntimeError("boom")


def big(request):
    return Response(BIG, content_type="application/octet-stream")


def upload(request):
    f = request.POST["file"]
    data = f.file.read()
    return Response("%d %s %s %s" % (len(data),
                                     hashlib.sha256(data).hexdigest(),
                                     f.filename, request.POST["note"]),
                    content_type="text/plain")


def file(request):
    # FileResponse iterates with wsgi.file_wrapper when there is one
    return FileResponse(request.environ["COMPAT_FILE"], request=request,
                        content_type="application/octet-stream")


with Configurator() as config:
    for name, pattern, view, kw in (
            ("index", "/", index, {}),
            ("hello", "/hello/{name}", hello, {}),
            ("form", "/form", form, {"request_method": "POST"}),
            ("json", "/json", json_post,
             {"request_method": "POST", "renderer": "json"}),
            ("redirect", "/redirect", redirect, {}),
            ("cookie_set", "/cookie/set", cookie_set, {}),
            ("cookie_get", "/cookie/get", cookie_get, {}),
            ("boom", "/boom", boom, {}),
            ("big", "/big", big, {}),
            ("upload", "/upload", upload, {"request_method": "POST"}),
            ("file", "/file", file, {})):
        config.add_route(name, pattern)
        config.add_view(view, route_name=name, **kw)

    application = config.make_wsgi_app()
