"""The test site's WSGI entry point, as `django-admin startproject` writes
it: served by `wsgi_pass .../django_site/wsgi.py;` with the project
directory on `wsgi_python_path`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")

application = get_wsgi_application()
