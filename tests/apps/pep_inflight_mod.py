"""Template (STARTED, FAILED): imported by a thread of pep_inflight_app.py;
says it started (file @STARTED@), then stays in flight until the test
saw pep_inflight_fail.py fail (file @FAILED@, at most 10 s)."""

import os
import time

with open("@STARTED@", "w"):
    pass
_deadline = time.monotonic() + 10
while not os.path.exists("@FAILED@") and time.monotonic() < _deadline:
    time.sleep(0.005)

VALUE = "pep-inflight-ok"
