"""Template (MARKER): imports pep_import_b, which imports this module back
while it is half-initialised; the first import (no @MARKER@ yet) then
raises, as a package whose submodule fails does.
"""

import os

import pep_import_b

MARKER = "@MARKER@"

if not os.path.exists(MARKER):
    with open(MARKER, "w") as f:
        f.write("failed once\n")
    raise RuntimeError("pep-import-boom: the first import fails")


class ui:
    name = "pep-import-ok"


def value():
    return pep_import_b.use()
