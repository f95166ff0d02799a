"""docs/directives.md documents exactly the directives the module has.

The module's directives are the ngx_string("wsgi_...") names in the
ngx_command_t tables of src/*.c; docs/directives.md documents each in a
section whose heading starts with the directive name ("### wsgi_pass").
The two sets must be equal: a directive lands together with its
documentation, and a removed one takes its section with it.
"""

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVES = ROOT / "docs" / "directives.md"

COMMANDS_RE = re.compile(
    r"ngx_command_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)ngx_null_command",
    re.S)
NAME_RE = re.compile(r'\{\s*ngx_string\(\s*"(wsgi_\w+)"\s*\)')
HEADING_RE = re.compile(r"^#{1,6}\s+`?(wsgi_\w+)\b", re.M)

FENCE_RE = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.S | re.M)


def source_directives():
    names = []
    for path in sorted((ROOT / "src").glob("*.c")):
        for table in COMMANDS_RE.findall(path.read_text()):
            names += NAME_RE.findall(table)
    return names


def prose(text):
    """The text without fenced code blocks, whose lines may start with
    '#' or hold "[x](y)" that is not a link."""
    return FENCE_RE.sub("", text)


def documented_directives():
    return HEADING_RE.findall(prose(DIRECTIVES.read_text()))


def test_directives_documents_every_directive():
    src = source_directives()
    assert src, "no wsgi_* directives found in the src/*.c command tables"

    assert DIRECTIVES.exists(), "docs/directives.md is missing"
    doc = documented_directives()

    dup = sorted(n for n, c in Counter(src).items() if c > 1)
    assert not dup, f"directives defined twice in src/: {dup}"

    dup = sorted(n for n, c in Counter(doc).items() if c > 1)
    assert not dup, f"directives documented twice in docs/directives.md: {dup}"

    undocumented = sorted(set(src) - set(doc))
    unknown = sorted(set(doc) - set(src))

    assert not undocumented and not unknown, (
        f"directives without a docs/directives.md section: {undocumented}; "
        f"docs/directives.md sections for directives the module lacks: "
        f"{unknown}")


def test_directive_sections_have_nginx_form():
    text = prose(DIRECTIVES.read_text())
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    bad = []
    for section in sections:
        name = section.split(None, 1)[0]
        if not name.startswith("wsgi_"):
            continue
        head = section[:600]
        for field in ("Syntax:", "Default:", "Context:"):
            if field not in head:
                bad.append(f"{name}: no {field}")
    assert not bad, bad
