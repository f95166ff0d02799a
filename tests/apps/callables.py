"""Several callables in one script (wsgi_pass PATH CALLABLE)."""

from wsgiref.validate import validator


def make(name):
    def app(environ, start_response):
        body = name.encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    return validator(app)


application = make("application")
other = make("other")
third_app = make("third_app")
not_callable = "just a string"
