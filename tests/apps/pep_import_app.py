"""Template: imports pep_import_a, whose first import fails half-way
(tests/test_pep3333.py, install next to pep_import_a.py and pep_import_b.py).
"""

import pep_import_a


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [pep_import_a.value().encode()]
