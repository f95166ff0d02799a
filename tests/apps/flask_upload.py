"""A Flask application taking multipart uploads (tests/test_flask.py).

POST /upload with a "file" part and a "note" field answers with JSON: the
sha256 and size of the file as Flask (werkzeug) parsed it from wsgi.input,
its filename, the note, and the CONTENT_LENGTH the server passed.
"""

import hashlib

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/upload")
def upload():
    f = request.files["file"]

    h = hashlib.sha256()
    size = 0

    while True:
        chunk = f.stream.read(65536)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)

    return jsonify(sha256=h.hexdigest(),
                   size=size,
                   filename=f.filename,
                   note=request.form.get("note"),
                   content_length=request.environ.get("CONTENT_LENGTH"))


@app.get("/")
def index():
    return "flask_upload\n", 200, {"Content-Type": "text/plain"}


application = app
