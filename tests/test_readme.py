"""README.md documents exactly the directives the module has.

The module's directives are the ngx_string("wsgi_...") names in the
ngx_command_t tables of src/*.c; README.md documents each in a section
whose heading starts with the directive name ("### wsgi_pass",
"### `wsgi_pass path [callable]`").  The two sets must be equal: a
directive lands together with its documentation, and a removed one takes
its section with it.
"""

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS_RE = re.compile(
    r"ngx_command_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)ngx_null_command",
    re.S)
NAME_RE = re.compile(r'\{\s*ngx_string\(\s*"(wsgi_\w+)"\s*\)')
HEADING_RE = re.compile(r"^#{1,6}\s+`?(wsgi_\w+)\b", re.M)


def source_directives():
    names = []
    for path in sorted((ROOT / "src").glob("*.c")):
        for table in COMMANDS_RE.findall(path.read_text()):
            names += NAME_RE.findall(table)
    return names


def readme_directives():
    text = (ROOT / "README.md").read_text()
    # fenced code blocks may contain lines starting with '#'
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return HEADING_RE.findall(text)


def test_readme_documents_every_directive():
    src = source_directives()
    assert src, "no wsgi_* directives found in the src/*.c command tables"

    assert (ROOT / "README.md").exists(), "README.md is missing"
    doc = readme_directives()

    dup = sorted(n for n, c in Counter(src).items() if c > 1)
    assert not dup, f"directives defined twice in src/: {dup}"

    dup = sorted(n for n, c in Counter(doc).items() if c > 1)
    assert not dup, f"directives documented twice in README.md: {dup}"

    undocumented = sorted(set(src) - set(doc))
    unknown = sorted(set(doc) - set(src))

    assert not undocumented and not unknown, (
        f"directives without a README.md section: {undocumented}; "
        f"README.md sections for directives the module lacks: {unknown}")
