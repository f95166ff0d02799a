"""Fails to import, 0.6 s after it starts (tests/test_pep3333.py)."""

import time

time.sleep(0.6)

raise RuntimeError("pep-inflight-boom")
