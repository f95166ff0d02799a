# Mercurial's hgweb as its example hgweb.wsgi has it (Debian's
# mercurial-common, /usr/share/doc/mercurial-common/examples/hgweb.wsgi);
# tests/test_compat_hgweb.py copies this file and fills in @CONFIG@.

# Path to repo or hgweb config to serve (see 'hg help hgweb')
config = b"@CONFIG@"

# enable demandloading to reduce startup time
from mercurial import demandimport; demandimport.enable()

from mercurial.hgweb import hgweb
application = hgweb(config)
