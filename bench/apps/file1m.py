"""A 1 MiB file through wsgi.file_wrapper with its default block size, as
Flask's send_file() and Django's FileResponse hand files to the server.

run.py writes the file to ../data/file1m.bin next to this directory."""

import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    os.pardir, "data", "file1m.bin")


def application(environ, start_response):
    f = open(PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f)
    return iter(lambda: f.read(8192), b"")
