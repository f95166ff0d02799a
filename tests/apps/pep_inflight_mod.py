"""Imported by a thread of pep_inflight_app.py; slow to import."""

import time

time.sleep(1.0)

VALUE = "pep-inflight-ok"
