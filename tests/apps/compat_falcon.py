"""A Falcon application (Debian's python3-falcon): the routes of
compat_common.py, with falcon.App and resource classes."""

import hashlib
import os

import falcon

from compat_common import big_body

BIG = big_body()


class Index:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "index falcon"


class Hello:
    def on_get(self, req, resp, name):
        resp.content_type = falcon.MEDIA_TEXT
        greeting = req.get_param("greeting", default="Hello")
        resp.text = f"{greeting}, {name}!"


class Form:
    def on_post(self, req, resp):
        form = req.get_media()
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"a={form['a']} b={form['b']}"


class Json:
    def on_post(self, req, resp):
        doc = req.get_media()
        resp.media = {"got": doc, "keys": len(doc)}


class Redirect:
    def on_get(self, req, resp):
        # req.prefix: scheme, host and SCRIPT_NAME
        raise falcon.HTTPFound(req.prefix + "/hello/there")


class CookieSet:
    def on_get(self, req, resp):
        resp.set_cookie("flavour", "oatmeal", path=req.app + "/",
                        secure=False)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "set"


class CookieGet:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "flavour=" + req.cookies.get("flavour", "none")


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("boom")


class Big:
    def on_get(self, req, resp):
        resp.content_type = "application/octet-stream"
        resp.data = BIG

    # Falcon answers HEAD only where a resource says so
    on_head = on_get


class Upload:
    def on_post(self, req, resp):
        for part in req.get_media():
            if part.name == "file":
                data = part.stream.read()
                filename = part.filename
            elif part.name == "note":
                note = part.text
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "%d %s %s %s" % (len(data),
                                     hashlib.sha256(data).hexdigest(),
                                     filename, note)


class File:
    def on_get(self, req, resp):
        # a stream with a read(): Falcon hands it to wsgi.file_wrapper
        f = open(req.env["COMPAT_FILE"], "rb")
        resp.content_type = "application/octet-stream"
        resp.set_stream(f, os.fstat(f.fileno()).st_size)

    on_head = on_get


app = falcon.App()
app.add_route("/", Index())
app.add_route("/hello/{name}", Hello())
app.add_route("/form", Form())
app.add_route("/json", Json())
app.add_route("/redirect", Redirect())
app.add_route("/cookie/set", CookieSet())
app.add_route("/cookie/get", CookieGet())
app.add_route("/boom", Boom())
app.add_route("/big", Big())
app.add_route("/upload", Upload())
app.add_route("/file", File())

application = app
