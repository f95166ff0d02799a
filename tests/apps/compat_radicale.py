"""Radicale (Debian's radicale) as its documentation has it for a WSGI
server: its entry point, configured by RADICALE_CONFIG, which the
server's environ provides here (wsgi_var RADICALE_CONFIG ...;)."""

from radicale import application

__all__ = ["application"]
