"""Small helpers shared by the tests: polling, side files, test data, and
the raw HTTP client (exchange(), read_all()) and response parser (Parsed)
every test that needs bytes on a socket uses."""

import random
import socket
import time
import urllib.parse



def wait_for(pred, timeout=5.0, interval=0.02):
    """Poll pred() until truthy or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def wait_stable(value, quiet=0.5, timeout=10.0, interval=0.02):
    """Poll value() until it stopped changing for quiet seconds (something
    stalled, e.g. a producer on a client that does not read) or timeout;
    returns its last value."""
    last = value()
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def read_side(path):
    """The text an application wrote to a side file, "" while none."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def side_lines(path):
    return read_side(path).splitlines()


def body_bytes(seed, size):
    """Same as body_bytes() of tests/apps/feat_app.py."""
    return random.Random(seed).randbytes(size)


def chunk_bytes(i, size):
    """Same as chunk_bytes() of tests/apps/feat_app.py."""
    head = b"%06d|" % i
    return head + bytes([65 + i % 26]) * (size - len(head))


def data_file(srv, size=300_000, seed=3, data=None):
    """Write data (or size bytes of body_bytes(seed)) to data.bin in the
    server's prefix: (path, data)."""
    if data is None:
        data = body_bytes(seed, size)
    path = srv.prefix / "data.bin"
    path.write_bytes(data)
    return path, data


def hdrs(**h):
    """Request header lines: hdrs(If_None_Match='"x"')."""
    return "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in h.items())


def url(where, /, **params):
    return where + "?" + urllib.parse.urlencode(
        {k: str(v) for k, v in params.items()})


def req(path, method="GET", version="1.1", close=True, extra=""):
    conn = "Connection: close\r\n" if close else ""
    return (f"{method} {path} HTTP/{version}\r\nHost: localhost\r\n"
            f"{conn}{extra}\r\n").encode()


def read_all(s, timeout, until=None):
    """Read until EOF or timeout: (bytes, eof), eof True when the server
    closed the connection (FIN or RST) before the timeout.  With until,
    stop as soon as those bytes have arrived."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while until is None or until not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), False
        s.settimeout(left)
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            return bytes(buf), False
        except ConnectionResetError:
            return bytes(buf), True
        if not d:
            return bytes(buf), True
        buf += d
    return bytes(buf), False


def send(srv, data, timeout=5.0, rcvbuf=None, host="127.0.0.1"):
    """Connect to srv (a Server or a port) and send data; the socket, its
    answer unread.  rcvbuf sets SO_RCVBUF before connect(): a small fixed
    receive buffer, which the kernel does not grow, for a client that does
    not read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, getattr(srv, "port", srv)))
        s.sendall(data)
    except BaseException:
        s.close()
        raise
    return s


def exchange(srv, data, timeout=5.0):
    """Send data on a fresh connection, read until EOF or timeout:
    (bytes, eof)."""
    s = send(srv, data, timeout)
    try:
        return read_all(s, timeout)
    finally:
        s.close()


def get(srv, path, extra="", method="GET", timeout=20.0):
    """One request with Connection: close, parsed; must end with EOF."""
    data, eof = exchange(srv, req(path, method=method, extra=extra),
                         timeout=timeout)
    assert eof, f"no EOF after {timeout}s: {data[:300]!r}"
    p = Parsed(data, head=(method == "HEAD"))
    assert p.rest == b"", p
    return p

def split_response(data):
    """(status_line, headers, rest) of the response at the front of data:
    the head of Parsed.  headers is a list of (name, value) str tuples, rest
    everything after the blank line (undecoded)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no end of response header in {data[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers, rest


def dechunk(data):
    """Decode a chunked body; returns (body, complete, rest_after_body)."""
    out = b""
    while True:
        line, sep, data = data.partition(b"\r\n")
        if not sep:
            return out, False, b""
        size = int(line.split(b";")[0], 16)
        if size == 0:
            # no trailers expected: final CRLF
            if data.startswith(b"\r\n"):
                return out, True, data[2:]
            return out, False, data
        if len(data) < size + 2:
            return out + data[:size], False, b""
        out += data[:size]
        data = data[size + 2:]


class Parsed:
    """One response parsed off the front of raw bytes."""

    def __init__(self, data, head=False):
        self.raw = data
        self.status_line, self.headers, rest = split_response(data)
        self.code = int(self.status_line.split(" ")[1])
        te = self.all("Transfer-Encoding")
        cl = self.all("Content-Length")
        if head or self.code in (204, 304) or self.code < 200:
            self.framing = "none"
            self.body, self.complete, self.rest = b"", True, rest
        elif te:
            assert te == ["chunked"], self.headers
            self.framing = "chunked"
            self.body, self.complete, self.rest = dechunk(rest)
        elif cl:
            assert len(cl) == 1, self.headers
            n = int(cl[0])
            self.framing = "length"
            self.body, self.rest = rest[:n], rest[n:]
            self.complete = len(self.body) == n
        else:
            self.framing = "close"
            self.body, self.complete, self.rest = rest, True, b""

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        v = self.all(name)
        return v[0] if v else None

    def __repr__(self):
        return (f"<Parsed {self.status_line!r} {self.headers!r} "
                f"{self.framing} complete={self.complete} "
                f"body={self.body[:200]!r} rest={self.rest[:100]!r}>")
