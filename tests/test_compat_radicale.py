"""Radicale (Debian's radicale), a CalDAV and CardDAV server, under
wsgi_pass, mounted at /app/.

tests/apps/compat_radicale.py is Radicale's own WSGI entry point; the
environ gives it RADICALE_CONFIG (wsgi_var), a config with htpasswd
users and filesystem storage in the test's directory.  Radicale does its
own Basic authentication, hence wsgi_pass_authorization on.  The DAV
verbs (PROPFIND, MKCALENDAR, MKCOL, REPORT) go through http.client as a
calendar or contacts client sends them.
"""

import base64
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("radicale")

from harness import compat  # noqa: E402

USER = "alice"
PASSWORD = "s3cret"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav",
      "CR": "urn:ietf:params:xml:ns:carddav"}

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//nginx-wsgi//compat test//EN
BEGIN:VEVENT
UID:event-1@nginx-wsgi.test
DTSTAMP:20261207T080000Z
DTSTART:20261224T180000Z
DTEND:20261224T200000Z
SUMMARY:R\u00e9veillon
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")

CONTACT = """BEGIN:VCARD
VERSION:3.0
UID:contact-1@nginx-wsgi.test
FN:Jos\u00e9 Example
N:Example;Jos\u00e9;;;
EMAIL:jose@example.org
END:VCARD
""".replace("\n", "\r\n")


def radicale(nginx, tmp_path, location):
    config = compat.radicale_config(tmp_path, USER, PASSWORD)
    return compat.mount(nginx, "compat_radicale.py", location=f"""
        wsgi_var RADICALE_CONFIG {config};
        wsgi_pass_authorization on;
        {location}
    """)


@pytest.fixture
def srv(nginx, tmp_path):
    return radicale(nginx, tmp_path, "")


def dav(srv, method, path, body=None, ctype=None, auth=AUTH, **headers):
    if auth:
        headers["Authorization"] = auth
    if ctype:
        headers["Content-Type"] = ctype
    if isinstance(body, str):
        body = body.encode()
    return srv.request(method, path, body=body, headers=headers)


def multistatus(srv, r):
    assert r.status == 207, f"{r!r}\n{srv.logs_tail()}"
    return ET.fromstring(r.body)


def hrefs(tree):
    return sorted(h.text for h in tree.findall("D:response/D:href", NS))


def test_radicale_auth(srv):
    r = dav(srv, "PROPFIND", "/app/", auth=None, Depth="0")
    assert r.status == 401, r
    assert r.header("WWW-Authenticate", "").startswith("Basic"), r

    bad = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
    r = dav(srv, "PROPFIND", "/app/", auth=bad, Depth="0")
    assert r.status == 401, r

    # the principal Radicale points the client to is under the prefix
    r = dav(srv, "PROPFIND", "/app/", """<?xml version="1.0"?>
        <D:propfind xmlns:D="DAV:">
          <D:prop><D:current-user-principal/></D:prop>
        </D:propfind>""", "application/xml", Depth="0")
    tree = multistatus(srv, r)
    principal = tree.find(
        "D:response/D:propstat/D:prop/D:current-user-principal/D:href", NS)
    assert principal is not None, r.text
    assert principal.text == f"/app/{USER}/", r.text


def test_radicale_caldav(srv):
    cal = f"/app/{USER}/calendar/"
    r = dav(srv, "MKCALENDAR", cal, """<?xml version="1.0"?>
        <C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
          <D:set><D:prop><D:displayname>Holidays</D:displayname></D:prop>
          </D:set>
        </C:mkcalendar>""", "application/xml")
    assert r.status == 201, f"{r!r}\n{srv.logs_tail()}"

    r = dav(srv, "PUT", cal + "event1.ics", EVENT,
            "text/calendar; charset=utf-8", **{"If-None-Match": "*"})
    assert r.status == 201, f"{r!r}\n{srv.logs_tail()}"
    etag = r.header("ETag")
    assert etag, r

    # the same event again with If-None-Match: * is refused
    r = dav(srv, "PUT", cal + "event1.ics", EVENT,
            "text/calendar; charset=utf-8", **{"If-None-Match": "*"})
    assert r.status == 412, r

    r = dav(srv, "GET", cal + "event1.ics")
    compat.ok(srv, r)
    assert r.header("Content-Type").startswith("text/calendar"), r
    assert r.header("ETag") == etag
    assert "UID:event-1@nginx-wsgi.test" in r.text
    assert "SUMMARY:R\u00e9veillon" in r.text

    r = dav(srv, "PROPFIND", cal, """<?xml version="1.0"?>
        <D:propfind xmlns:D="DAV:">
          <D:prop><D:displayname/><D:getetag/><D:resourcetype/></D:prop>
        </D:propfind>""", "application/xml", Depth="1")
    tree = multistatus(srv, r)
    assert hrefs(tree) == [cal, cal + "event1.ics"], r.text
    assert tree.find(".//D:displayname", NS).text == "Holidays"
    assert tree.find(".//D:resourcetype/C:calendar", NS) is not None
    assert etag in [e.text for e in tree.findall(".//D:getetag", NS)]

    # a time range query, as a calendar client syncs
    r = dav(srv, "REPORT", cal, """<?xml version="1.0"?>
        <C:calendar-query xmlns:D="DAV:"
                          xmlns:C="urn:ietf:params:xml:ns:caldav">
          <D:prop><D:getetag/><C:calendar-data/></D:prop>
          <C:filter><C:comp-filter name="VCALENDAR">
            <C:comp-filter name="VEVENT">
              <C:time-range start="20261201T000000Z"
                            end="20270101T000000Z"/>
            </C:comp-filter>
          </C:comp-filter></C:filter>
        </C:calendar-query>""", "application/xml", Depth="1")
    tree = multistatus(srv, r)
    assert hrefs(tree) == [cal + "event1.ics"], r.text
    data = tree.find(".//C:calendar-data", NS).text
    assert "SUMMARY:R\u00e9veillon" in data

    # outside the range: nothing
    r = dav(srv, "REPORT", cal, """<?xml version="1.0"?>
        <C:calendar-query xmlns:D="DAV:"
                          xmlns:C="urn:ietf:params:xml:ns:caldav">
          <D:prop><D:getetag/></D:prop>
          <C:filter><C:comp-filter name="VCALENDAR">
            <C:comp-filter name="VEVENT">
              <C:time-range start="20250101T000000Z"
                            end="20250201T000000Z"/>
            </C:comp-filter>
          </C:comp-filter></C:filter>
        </C:calendar-query>""", "application/xml", Depth="1")
    assert hrefs(multistatus(srv, r)) == [], r.text

    r = dav(srv, "DELETE", cal + "event1.ics", **{"If-Match": etag})
    assert r.status in (200, 204), r
    r = dav(srv, "GET", cal + "event1.ics")
    assert r.status == 404, r


def test_radicale_carddav(srv):
    book = f"/app/{USER}/contacts/"
    r = dav(srv, "MKCOL", book, """<?xml version="1.0"?>
        <D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
          <D:set><D:prop>
            <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
            <D:displayname>Friends</D:displayname>
          </D:prop></D:set>
        </D:mkcol>""", "application/xml")
    assert r.status == 201, f"{r!r}\n{srv.logs_tail()}"

    r = dav(srv, "PUT", book + "contact1.vcf", CONTACT,
            "text/vcard; charset=utf-8")
    assert r.status == 201, f"{r!r}\n{srv.logs_tail()}"

    r = dav(srv, "GET", book + "contact1.vcf")
    compat.ok(srv, r)
    assert "FN:Jos\u00e9 Example" in r.text

    r = dav(srv, "REPORT", book, """<?xml version="1.0"?>
        <CR:addressbook-query xmlns:D="DAV:"
                              xmlns:CR="urn:ietf:params:xml:ns:carddav">
          <D:prop><D:getetag/><CR:address-data/></D:prop>
          <CR:filter>
            <CR:prop-filter name="EMAIL">
              <CR:text-match collation="i;unicode-casemap"
                             match-type="contains">example.org</CR:text-match>
            </CR:prop-filter>
          </CR:filter>
        </CR:addressbook-query>""", "application/xml", Depth="1")
    tree = multistatus(srv, r)
    assert hrefs(tree) == [book + "contact1.vcf"], r.text
    assert "FN:Jos\u00e9 Example" in tree.find(".//CR:address-data", NS).text

    r = dav(srv, "PROPFIND", f"/app/{USER}/", """<?xml version="1.0"?>
        <D:propfind xmlns:D="DAV:">
          <D:prop><D:resourcetype/></D:prop>
        </D:propfind>""", "application/xml", Depth="1")
    tree = multistatus(srv, r)
    assert book in hrefs(tree), r.text
    assert tree.find(".//D:resourcetype/CR:addressbook", NS) is not None


def test_radicale_delete_if_match_default_config(nginx, tmp_path):
    srv = radicale(nginx, tmp_path, "")
    cal = f"/app/{USER}/calendar/"
    r = dav(srv, "MKCALENDAR", cal)
    assert r.status == 201, r
    r = dav(srv, "PUT", cal + "event1.ics", EVENT, "text/calendar")
    assert r.status == 201, r

    r = dav(srv, "DELETE", cal + "event1.ics",
            **{"If-Match": r.header("ETag")})
    try:
        assert r.status in (200, 204), r
    finally:
        # the event is gone whatever the client was told
        assert dav(srv, "GET", cal + "event1.ics").status == 404
