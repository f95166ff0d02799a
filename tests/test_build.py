"""The built module: what it exports, what it links against."""

import subprocess

from harness import module_path


def test_only_module_symbols_are_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", str(module_path())],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert {"ngx_modules", "ngx_module_names", "ngx_module_order"} <= names
    stray = sorted(n for n in names - {"ngx_modules", "ngx_module_names",
                                       "ngx_module_order"}
                   if not n.startswith("ngx_http_wsgi_"))
    assert stray == [], stray


def test_linked_against_debian_libpython():
    out = subprocess.run(["ldd", str(module_path())], capture_output=True,
                         text=True, check=True).stdout
    lines = [l for l in out.splitlines() if "libpython" in l]
    assert len(lines) == 1, out
    assert "libpython3.11.so" in lines[0], out
    assert "/usr/lib/" in lines[0] or "/lib/x86_64-linux-gnu/" in lines[0], \
        lines[0]
