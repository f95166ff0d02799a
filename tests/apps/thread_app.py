"""Starts a thread at import that increments a counter every 10 ms.

Answers JSON {"pid", "counter", "alive"}.
"""

import json
import os
import threading
import time
from wsgiref.validate import validator

counter = 0


def tick():
    global counter
    while True:
        counter += 1
        time.sleep(0.01)


thread = threading.Thread(target=tick, name="ticker", daemon=True)
thread.start()


def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "counter": counter,
                       "alive": thread.is_alive()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = validator(app)
