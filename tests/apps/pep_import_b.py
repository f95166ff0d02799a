"""Imported by pep_import_a while that one is half-initialised: keeps the
module object it got then (see tests/apps/pep_import_a.py).
"""

import pep_import_a


def use():
    return pep_import_a.ui.name
