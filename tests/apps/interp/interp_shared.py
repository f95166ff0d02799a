"""A module global that an application group shares (tests/apps/interp_app.py)."""

value = None
