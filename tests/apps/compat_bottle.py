"""A Bottle application (Debian's python3-bottle): the routes of
compat_common.py."""

import hashlib
import json
import os

import bottle

from compat_common import big_body

BIG = big_body()

app = bottle.Bottle()


@app.get("/")
def index():
    return "index bottle"


@app.get("/hello/<name>", name="hello")
def hello(name):
    bottle.response.content_type = "text/plain; charset=utf-8"
    greeting = bottle.request.query.getunicode("greeting", default="Hello")
    return f"{greeting}, {name}!"


@app.post("/form")
def form():
    bottle.response.content_type = "text/plain; charset=utf-8"
    f = bottle.request.forms
    return f"a={f.getunicode('a')} b={f.getunicode('b')}"


@app.post("/json")
def json_post():
    doc = bottle.request.json
    bottle.response.content_type = "application/json"
    return json.dumps({"got": doc, "keys": len(doc)})


@app.get("/redirect")
def redirect():
    # get_url() puts SCRIPT_NAME in front
    bottle.redirect(app.get_url("hello", name="there"))


@app.get("/cookie/set")
def cookie_set():
    bottle.response.set_cookie("flavour", "oatmeal",
                               path=bottle.request.script_name)
    return "set"


@app.get("/cookie/get")
def cookie_get():
    return "flavour=" + bottle.request.get_cookie("flavour", "none")


@app.get("/boom")
def boom():
    raise RuntimeError("boom")


@app.get("/big")
def big():
    bottle.response.content_type = "application/octet-stream"
    return BIG


@app.post("/upload")
def upload():
    f = bottle.request.files.get("file")
    data = f.file.read()
    return "%d %s %s %s" % (len(data), hashlib.sha256(data).hexdigest(),
                            f.raw_filename, bottle.request.forms.note)


@app.get("/file")
def file():
    path = bottle.request.environ["COMPAT_FILE"]
    return bottle.static_file(os.path.basename(path),
                              root=os.path.dirname(path),
                              mimetype="application/octet-stream")


application = app
