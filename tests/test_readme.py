"""The documentation matches the module, and its links lead somewhere.

The module's directives are the ngx_string("wsgi_...") names in the
ngx_command_t tables of src/*.c; docs/directives.md documents each in a
section whose heading starts with the directive name ("### wsgi_pass").
The two sets must be equal: a directive lands together with its
documentation, and a removed one takes its section with it.

README.md is the way in: it links to every file in docs/.  And every
relative link in README.md, docs/*.md and the hand-written bench
documents leads to a file that exists and, for "file.md#anchor", to a
heading of that file.
"""

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVES = ROOT / "docs" / "directives.md"

COMMANDS_RE = re.compile(
    r"ngx_command_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)ngx_null_command",
    re.S)
NAME_RE = re.compile(r'\{\s*ngx_string\(\s*"(wsgi_\w+)"\s*\)')
HEADING_RE = re.compile(r"^#{1,6}\s+`?(wsgi_\w+)\b", re.M)

FENCE_RE = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.S | re.M)
CODE_RE = re.compile(r"`[^`\n]*`")
LINK_RE = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?"
                     r"(?:\s+\"[^\"]*\")?\s*\)")
ATX_RE = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


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


def anchor(heading):
    """GitHub's anchor of a heading: the text as shown, lowercased, with
    punctuation other than '-' and '_' dropped and spaces made '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen = Counter()
    result = set()
    for heading in ATX_RE.findall(prose(path.read_text())):
        a = anchor(heading)
        result.add(a if seen[a] == 0 else f"{a}-{seen[a]}")
        seen[a] += 1
    return result


def doc_files():
    bench = [ROOT / "bench" / "README.md", ROOT / "bench" / "results"
             / "history.md"]
    return ([ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
            + [p for p in bench if p.exists()])


def links(path):
    text = CODE_RE.sub("", prose(path.read_text()))
    return LINK_RE.findall(text)


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


ENTRY_RE = re.compile(
    r'\{\s*ngx_string\(\s*"(wsgi_\w+)"\s*\),\s*[^,]+,\s*(\w+),\s*\w+,'
    r'\s*(?:offsetof\(\s*\w+,\s*(\w+)\s*\)|0)')
DEFAULT_RE = re.compile(
    r"ngx_conf_(?:merge|init)_\w*value\(\s*(?:conf|wmcf)->(\w+),"
    r"(?:\s*prev->\w+,)?\s*([^;]+?)\);", re.S)


def code_default(handler, value):
    """The default as nginx.org writes it, from the value in the code."""
    value = " ".join(value.split())
    if handler == "ngx_conf_set_flag_slot":
        return {"0": "off", "1": "on"}[value]
    if handler == "ngx_conf_set_num_slot":
        return str(int(value))
    if handler == "ngx_conf_set_size_slot":
        if value.endswith("ngx_pagesize"):
            return "4k|8k"
        n = int(value)
        return f"{n // 1024}k" if n % 1024 == 0 else str(n)
    if handler == "ngx_conf_set_enum_slot":
        return value.rsplit("_", 1)[1].lower()
    return None


def test_directive_defaults_match_code():
    """The Default: line of each directive whose default is a plain value
    in the merge or init functions says that value."""
    code = (ROOT / "src" / "ngx_http_wsgi_module.c").read_text()
    defaults = dict(DEFAULT_RE.findall(code))

    text = prose(DIRECTIVES.read_text())
    checked = []
    wrong = []

    for name, handler, field in ENTRY_RE.findall(code):
        if not field or field not in defaults:
            continue
        want = code_default(handler, defaults[field])
        if want is None:
            continue
        m = re.search(rf"^### {name}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
        assert m, f"no section for {name}"
        line = re.search(r"^Default: (.*?)\\?$", m.group(1), re.M)
        checked.append(name)
        if line is None or line.group(1) != f"`{name} {want};`":
            wrong.append(f"{name}: the code says `{name} {want};`, the "
                         f"docs {line.group(1) if line else 'nothing'}")

    assert len(checked) >= 10, f"too few defaults found: {checked}"
    assert not wrong, wrong


def test_readme_links_every_doc():
    targets = {unquote(t.split("#", 1)[0]) for t in links(ROOT / "README.md")}
    missing = sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")
                     if f"docs/{p.name}" not in targets)
    assert not missing, f"README.md does not link to {missing}"


def test_relative_links_lead_somewhere():
    broken = []
    cache = {}

    for path in doc_files():
        for target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
                continue                        # http:, https:, mailto:

            file, _, frag = target.partition("#")
            dest = (path.parent / unquote(file)).resolve() if file else path
            where = f"{path.relative_to(ROOT)}: ({target})"

            if not dest.exists():
                broken.append(f"{where}: no such file")
                continue

            if not frag:
                continue

            if dest.suffix != ".md":
                broken.append(f"{where}: an anchor in a file not markdown")
                continue

            if dest not in cache:
                cache[dest] = anchors(dest)

            if unquote(frag) not in cache[dest]:
                broken.append(f"{where}: no such heading")

    assert not broken, "\n".join(broken)


def test_anchor_rule():
    assert anchor("os._exit(2)") == "os_exit2"
    assert anchor("Threads and the request's objects") == \
        "threads-and-the-requests-objects"
    assert anchor("Quick start: `make run` and `make test`") == \
        "quick-start-make-run-and-make-test"
    assert anchor("wsgi_thread_pool") == "wsgi_thread_pool"
