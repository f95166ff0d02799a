"""A CherryPy application (Debian's python3-cherrypy3): the routes of
compat_common.py, as an exposed object tree.

CherryPy's documented set-up inside a WSGI server: no HTTP server of its
own, no autoreloader, the engine started by hand and stopped when the
worker's interpreter finalizes (else CherryPy warns at exit).  The
Application takes its mount point from each request's SCRIPT_NAME
(script_name=None), so the same script serves whatever location it is
mounted at.
"""

import atexit
import hashlib

import cherrypy
from cherrypy.lib.static import serve_file

from compat_common import big_body

BIG = big_body()


class Root:
    @cherrypy.expose
    def index(self):
        return "index cherrypy"

    @cherrypy.expose
    def hello(self, name, greeting="Hello"):
        cherrypy.response.headers["Content-Type"] = "text/plain"
        return f"{greeting}, {name}!"

    @cherrypy.expose
    def form(self, a, b):
        cherrypy.response.headers["Content-Type"] = "text/plain"
        return f"a={a} b={b}"

    @cherrypy.expose
    @cherrypy.tools.json_in()
    @cherrypy.tools.json_out()
    def json(self):
        doc = cherrypy.request.json
        return {"got": doc, "keys": len(doc)}

    @cherrypy.expose
    def redirect(self):
        # cherrypy.url() puts the mount point (SCRIPT_NAME) in front
        raise cherrypy.HTTPRedirect(cherrypy.url("/hello/there"), 302)

    @cherrypy.expose
    def boom(self):
        raise RuntimeError("boom")

    @cherrypy.expose
    def upload(self, file, note):
        data = file.file.read()
        cherrypy.response.headers["Content-Type"] = "text/plain"
        return "%d %s %s %s" % (len(data), hashlib.sha256(data).hexdigest(),
                                file.filename, note)

    @cherrypy.expose
    def file(self):
        return serve_file(cherrypy.request.wsgi_environ["COMPAT_FILE"],
                          "application/octet-stream")

    @cherrypy.expose
    def big(self):
        cherrypy.response.headers["Content-Type"] = \
            "application/octet-stream"
        return BIG


class Cookie:
    @cherrypy.expose
    def set(self):
        c = cherrypy.response.cookie
        c["flavour"] = "oatmeal"
        c["flavour"]["path"] = cherrypy.request.script_name + "/"
        return "set"

    @cherrypy.expose
    def get(self):
        c = cherrypy.request.cookie
        return "flavour=" + (c["flavour"].value if "flavour" in c
                             else "none")


Root.cookie = Cookie()

cherrypy.config.update({
    "environment": "embedded",
    "log.screen": False,
})
cherrypy.server.unsubscribe()
cherrypy.engine.start()
atexit.register(cherrypy.engine.exit)

application = cherrypy.Application(Root(), script_name=None, config={
    # errors and their tracebacks go to wsgi.errors
    "/": {"request.show_tracebacks": False, "log.wsgi": True},
})
