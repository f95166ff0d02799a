"""What the compat_* applications share (tests/harness/compat.py).

Every compat_<framework>.py application answers the same routes below its
mount point, written the framework's own way:

    GET  /                  "index <framework>"
    GET  /hello/NAME        "Hello, NAME!" (NAME percent-decoded, UTF-8);
                            ?greeting=G replaces "Hello"
    POST /form              form fields a and b -> "a=A b=B"
    POST /json              JSON object -> JSON {"got": object, "keys": n}
    GET  /redirect          302 to the URL the framework builds for
                            /hello/there (its prefix included)
    GET  /cookie/set        sets the cookie flavour=oatmeal
    GET  /cookie/get        "flavour=VALUE" from the request's cookie
    GET  /boom              raises RuntimeError: a 500
    GET  /big               big_body(), application/octet-stream
    POST /upload            multipart/form-data: a file part "file" and a
                            field "note" -> "SIZE SHA256 FILENAME NOTE"
    GET  /file              the file environ["COMPAT_FILE"] names (set by
                            wsgi_var), sent by the framework's own file
                            response where it has one

and 404 for anything else.
"""

import random

BIG_SIZE = 3 * 1024 * 1024 + 5


def big_body():
    return random.Random(3333).randbytes(BIG_SIZE)
