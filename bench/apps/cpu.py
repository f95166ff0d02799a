"""CPU-bound: about 1 ms of pure Python holding the GIL, then 5 bytes."""


def work(n=40000):
    total = 0
    for i in range(n):
        total += i * i
    return total


def application(environ, start_response):
    work()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "5")])
    return [b"done\n"]
