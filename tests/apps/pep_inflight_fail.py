"""Template (ARMED, BEGAN, STARTED): fails to import
(tests/test_pep3333.py).  Once the test created @ARMED@, it first says
it began (file @BEGAN@) and fails only once pep_inflight_mod's import
began too (file @STARTED@, at most 10 s)."""

import os
import time

if os.path.exists("@ARMED@"):
    with open("@BEGAN@", "w"):
        pass
    _deadline = time.monotonic() + 10
    while not os.path.exists("@STARTED@") and time.monotonic() < _deadline:
        time.sleep(0.005)

raise RuntimeError("pep-inflight-boom")
