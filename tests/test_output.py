"""The way out of the application's response: wsgi_optimize_send_headers,
wsgi_output_buffering, wsgi_write_buffering and its temp files.

App: tests/apps/feat_app.py (dispatched on the last path segment; behind
wsgiref.validate, or bare as "feat_app.py bare" where the module must see
the application's own list).  Where the two modes of the suite differ on
purpose, harness.inline_mode() tells which one runs.
"""

import re
import shutil
import socket
import time

import pytest

from harness import (Parsed, chunk_bytes, exchange, get, hdrs, inline_mode,
                     read_all, req, send, side_lines, url, wait_for,
                     worker_temp_files)


KEEPALIVE = "keepalive_timeout 30s;"
ETAG = '"abc123"'


# -- wsgi_optimize_send_headers ----------------------------------------------


def opt_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        KEEPALIVE + "\n"
        f"location /on/ {{ {app} wsgi_optimize_send_headers on; }}\n"
        f"location /off/ {{ {app} }}\n"))


def opt_run(srv, path, extra="", method="GET", head=False):
    """Request path with a fresh side file; (Parsed, side lines once
    close() was called)."""
    side = srv.prefix / f"side{time.monotonic_ns()}.txt"
    data, eof = exchange(srv, req(url(path, side=side, etag=ETAG),
                                  method=method, close=False, extra=extra)
                         + req("/off/second"))
    p = Parsed(data, head=head)
    assert p.rest.startswith(b"HTTP/1.1 200"), f"unexpected body: {p!r}"
    assert Parsed(p.rest).body == b"second"
    assert wait_for(lambda: "closed" in side_lines(side)), \
        f"close() not called: {side_lines(side)}\n{srv.logs_tail()}"
    time.sleep(0.1)
    return p, side_lines(side)


def test_optimize_head_stops_the_generator(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/on/opt", method="HEAD", head=True)
    assert p.code == 200, p
    assert lines == ["closed"], f"generator ran past the empty item: {lines}"


def test_no_optimize_head_runs_the_generator(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/off/opt", method="HEAD", head=True)
    assert p.code == 200, p
    assert lines == ["ran", "closed"], lines


def test_optimize_get_has_the_body(nginx):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, "/on/opt")
    assert p.code == 200, p
    assert p.body == b"body after the empty item", p
    assert lines == ["ran", "closed"], lines


@pytest.mark.parametrize("where, ran", [("/on/", False), ("/off/", True)])
def test_optimize_304(nginx, where, ran):
    srv = opt_server(nginx)
    p, lines = opt_run(srv, where + "opt", extra=hdrs(If_None_Match=ETAG))
    assert p.code == 304, p
    assert lines == (["ran", "closed"] if ran else ["closed"]), lines


# -- wsgi_output_buffering ---------------------------------------------------


HELD_BACK = 0.3     # how long the tests look for data that must not come
OUTBUF_N, OUTBUF_SIZE = 64, 1024
OUTBUF_BODY = b"".join(chunk_bytes(i, OUTBUF_SIZE) for i in range(OUTBUF_N))


def outbuf_server(nginx):
    app = "wsgi_pass {apps}/feat_app.py;"
    return nginx(server=(
        f"location /buf/ {{ {app} wsgi_output_buffering on; "
        "wsgi_buffer_size 16k; }\n"
        f"location /nobuf/ {{ {app} wsgi_buffer_size 16k; }}\n"))


def chunk_sizes(raw):
    """The sizes of the chunks of a chunked response, the last 0 left out."""
    data = raw[raw.index(b"\r\n\r\n") + 4:]
    sizes = []
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return sizes
        sizes.append(size)
        data = data[size + 2:]


def fetch_held(srv, target, go, ahead, until):
    """GET target, whose application waits for the file go: what arrived
    while it waited (looked for ahead seconds, or until `until` came), and
    the rest, read to the end once the test has created go."""
    s = send(srv, req(target), timeout=10)
    try:
        early, eof = read_all(s, ahead, until=until)
        assert not eof, early
        go.write_text("go")
        rest, eof = read_all(s, 10)
    finally:
        s.close()
    assert eof, rest
    return early, rest


def outbuf_fetch(srv, where, hold, ahead):
    """GET where + "outbuf", whose generator waits after `hold` pieces until
    the test lets it go; (whether the first piece arrived while it waited,
    looked for ahead seconds, the chunk sizes)."""
    go = srv.prefix / "go"
    early, rest = fetch_held(
        srv, url(where + "outbuf", n=OUTBUF_N, size=OUTBUF_SIZE, hold=hold,
                 go=go), go, ahead, chunk_bytes(0, OUTBUF_SIZE))
    p = Parsed(early + rest)
    assert p.code == 200 and p.complete, p
    assert p.body == OUTBUF_BODY, "body corrupted"
    return chunk_bytes(0, OUTBUF_SIZE) in early, chunk_sizes(p.raw)


def test_output_buffering_sends_full_buffers(nginx):
    srv = outbuf_server(nginx)
    # 15 pieces do not fill the 16 KiB buffer: nothing goes out yet ...
    early, sizes = outbuf_fetch(srv, "/buf/", 15, HELD_BACK)
    assert not early, "a piece sent before the buffer was full"
    # ... then 4 buffers of 16 KiB (one chunk each), not 64 pieces
    assert len(sizes) <= 5, sizes
    assert sizes[0] >= 15 * 1024, sizes


def test_output_buffering_off_streams_each_piece(nginx):
    srv = outbuf_server(nginx)
    # the first piece goes out while the generator waits for the second
    early, sizes = outbuf_fetch(srv, "/nobuf/", 1, 5)
    assert early, "the first piece held back"
    assert sizes[0] == OUTBUF_SIZE, sizes


# -- wsgi_write_buffering ----------------------------------------------------


WRITES_BODY = b"".join(chunk_bytes(i, 1000) for i in range(100))


def wb_server(nginx, extra_server=""):
    return nginx(server=(
        KEEPALIVE + "\n" + extra_server +
        "location /wb/ { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; }\n"
        "location /wbv/ { wsgi_pass {apps}/feat_app.py; "
        "wsgi_write_buffering on; }\n"
        "location /nowb/ { wsgi_pass {apps}/feat_app.py; }\n"))


def test_write_buffering_adds_content_length(nginx):
    srv = wb_server(nginx)
    p = get(srv, url("/wb/writes", ret="list"))
    assert p.code == 200, p
    assert p.all("Content-Length") == ["100003"], p
    assert p.all("Transfer-Encoding") == [], p
    assert p.body == WRITES_BODY + b"end"
    assert temp_files_left(srv) == []


def writes_body(n):
    return b"".join(chunk_bytes(i, 1000) for i in range(n))


# The write() data is held back in memory up to wsgi_write_buffer_size (a
# page), then in a temp file; n=50 is less than a step's output bound
# (wsgi_buffer_size, 64k), n=100 more.


@pytest.mark.parametrize("n", [50, 100])
def test_write_buffering_through_validator(nginx, n):
    # the validator's iterator hides the list: the length is unknown, the
    # body must still be right
    srv = wb_server(nginx)
    p = get(srv, url("/wbv/writes", ret="list", n=n))
    assert p.code == 200 and p.complete, p
    left = temp_files_left(srv)
    assert len(p.body) == n * 1000 + 3, \
        f"{len(p.body)} body bytes; temp files still open: {left}"
    assert p.body == writes_body(n) + b"end"
    assert left == [], f"temp files still open: {left}"


@pytest.mark.parametrize("n", [50, 100])
@pytest.mark.parametrize("where", ["/wb/", "/wbv/"])
def test_write_buffering_generator_is_chunked(nginx, where, n):
    srv = wb_server(nginx)
    p = get(srv, url(where + "writes", ret="gen", n=n))
    assert p.code == 200, p
    assert p.framing == "chunked" and p.complete, p
    assert p.all("Content-Length") == [], p
    left = temp_files_left(srv)
    assert len(p.body) == n * 1000 + 4, \
        f"{len(p.body)} body bytes; temp files still open: {left}"
    assert p.body == writes_body(n) + b"g1g2"
    assert left == [], f"temp files still open: {left}"


def temp_files_left(srv):
    """Temp files in wsgi_temp_path (the default, wsgi_temp in the prefix)
    that the worker still holds open shortly after the response."""
    temp = srv.prefix / "wsgi_temp"
    wait_for(lambda: worker_temp_files(srv, temp) == [], 1)
    return worker_temp_files(srv, temp)


def test_write_buffering_headers_replaceable_after_write(nginx):
    srv = wb_server(nginx)
    p = get(srv, "/wbv/write_replace")
    assert p.code == 500, p
    assert p.all("X-Replaced") == ["yes"], p
    assert p.all("X-First") == [], p
    # what write() held back was not the answer: the error page is
    assert p.complete and p.body == b"error page", p


# The application writes b"first;", then waits for the file "go" before it
# returns: what arrived before the test creates it was sent while the
# application still ran.

def write_then_wait(srv, where, ahead):
    """GET where + "write_sleep"; whether b"first;" arrived before the
    application returned (looked for ahead seconds), and the response."""
    go = srv.prefix / "go"
    early, rest = fetch_held(srv, url(where + "write_sleep", go=go), go,
                             ahead, b"first;")
    return b"first;" in early, Parsed(early + rest)


def test_write_buffering_off_sends_write_data_at_once(nginx):
    srv = wb_server(nginx)
    if inline_mode():
        # on the event loop, the step's output goes when the step is done
        early, p = write_then_wait(srv, "/nowb/", HELD_BACK)
        assert not early, "write() data sent before the application returned"
    else:
        early, p = write_then_wait(srv, "/nowb/", 5)
        assert early, "write() data held back until the application returned"
    assert p.code == 200 and p.body == b"first;last", p


def test_write_buffering_on_holds_write_data_back(nginx):
    srv = wb_server(nginx)
    early, p = write_then_wait(srv, "/wb/", HELD_BACK)
    assert not early, "write() data sent before the application returned"
    assert p.code == 200 and p.body == b"first;last", p
    assert p.all("Content-Length") == ["10"], p


SPOOL_N, SPOOL_SIZE = 256, 4096     # 1 MiB of write()s
SPOOL_BODY = b"".join(chunk_bytes(i, SPOOL_SIZE) for i in range(SPOOL_N))
SPOOL_ERR = r"\[error\] .*wsgi: cannot create a temp file in \"%s\""


def spool_server(nginx, temp):
    return nginx(server=(
        "location / { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; wsgi_write_buffer_size 4k; "
        f"wsgi_temp_path {temp}; }}\n"))


def test_write_buffer_spills_to_temp_file(nginx, tmp_path):
    temp = tmp_path / "wtemp"
    srv = spool_server(nginx, temp)
    assert temp.is_dir(), "nginx did not create wsgi_temp_path"
    marker, go = tmp_path / "marker", tmp_path / "go"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(req(url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE,
                          marker=marker, go=go)))
        assert wait_for(marker.exists), srv.logs_tail()
        # the app waits for "go": its write()s are in an unlinked file
        files = worker_temp_files(srv, temp)
        go.write_text("go")
        data, eof = read_all(s, 10)
    finally:
        s.close()
    assert eof
    assert len(files) == 1 and files[0].endswith(" (deleted)") \
        and "/wsgi." in files[0], files
    p = Parsed(data)
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(len(SPOOL_BODY) + 3)], p
    assert p.body == SPOOL_BODY + b"end", "body corrupted"
    assert not re.search(SPOOL_ERR % re.escape(str(temp)), srv.error_log())
    assert wait_for(lambda: worker_temp_files(srv, temp) == []), \
        worker_temp_files(srv, temp)


def test_write_buffer_temp_file_failure_keeps_data(nginx, tmp_path):
    temp = tmp_path / "wtemp"
    srv = spool_server(nginx, temp)
    # nginx created the directory at start; a regular file in its place
    # makes every temp file fail (chmod would not stop root)
    shutil.rmtree(temp)
    temp.write_text("not a directory")
    p = get(srv, url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE))
    assert p.code == 200, p
    assert p.all("Content-Length") == [str(len(SPOOL_BODY) + 3)], p
    assert p.body == SPOOL_BODY + b"end", "body lost or corrupted"
    assert srv.wait_log(SPOOL_ERR % re.escape(str(temp))), srv.logs_tail()


def test_temp_path_with_levels_created_and_used(nginx, tmp_path):
    temp = tmp_path / "wtemp_levels"
    srv = nginx(server=(
        "location / { wsgi_pass {apps}/feat_app.py bare; "
        "wsgi_write_buffering on; wsgi_write_buffer_size 4k; "
        f"wsgi_temp_path {temp} 1 2; }}\n"))
    assert temp.is_dir(), "nginx did not create the wsgi_temp_path"
    p = get(srv, url("/write_spool", n=SPOOL_N, size=SPOOL_SIZE))
    assert p.code == 200, p
    assert p.body == SPOOL_BODY + b"end"
    assert "cannot create a temp file" not in srv.error_log(), \
        srv.logs_tail()
