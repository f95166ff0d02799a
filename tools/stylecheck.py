"""Style checker for the module's C sources and the Python around them.

    /usr/bin/python3 tools/stylecheck.py              (make style)
    /usr/bin/python3 tools/stylecheck.py [--no-prefix] FILE...

C files (src/*.c, src/*.h, and bench/*.c and fuzz/*.c without the naming
rule) follow nginx's own style:

  - at most 80 columns, no tabs, no trailing whitespace, a final newline;
  - /* */ comments only, no //;
  - a function definition has its return type on a line of its own and
    the function name at column 0 of the next line;
  - every file-scope name, static or not, is prefixed ngx_http_wsgi_:
    functions, prototypes, variables, typedefs, struct/union/enum tags;
    macros are prefixed NGX_HTTP_WSGI_, or ngx_http_wsgi_ as nginx's
    function-like macros are (include guards _NGX_HTTP_WSGI_).

Python files (tests/, tools/, bench/, examples/): no tabs, no trailing
whitespace, a final newline.

Problems are printed as FILE:LINE: MESSAGE; the exit status is 1 if there
were any.  --no-prefix skips the naming rule, to try the layout rules on
nginx's own sources, which must pass them.
"""

import os
import re
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PREFIX = "ngx_http_wsgi_"
# upper case for constants, nginx's lower case for function-like macros
# (ngx_string, ngx_memcpy), the include guard's leading underscore
MACRO_PREFIXES = ("NGX_HTTP_WSGI_", "_NGX_HTTP_WSGI_", "ngx_http_wsgi_")

# Macros whose names are not ours to choose.
MACRO_ALLOWED = {"PY_SSIZE_T_CLEAN", "Py_LIMITED_API"}

MAX_COLUMNS = 80

KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "_Bool", "ngx_inline",
}

IDENT = re.compile(r"[A-Za-z_]\w*")


class Checker:

    def __init__(self, prefix=True):
        self.prefix = prefix
        self.problems = 0
        self.pending = []

    def report(self, path, line, message):
        self.problems += 1
        self.pending.append((line, message))

    def flush(self, path):
        # sorted by line: the checks run in several passes
        for line, message in sorted(self.pending, key=lambda p: p[0]):
            print("%s:%d: %s" % (os.path.relpath(path), line, message))

        self.pending = []

    # lines

    def check_lines(self, path, text, columns):
        lines = text.split("\n")

        if text and not text.endswith("\n"):
            self.report(path, len(lines), "no newline at end of file")

        if text.endswith("\n"):
            lines.pop()

        for n, line in enumerate(lines, 1):
            if "\t" in line:
                self.report(path, n, "tab")

            if line != line.rstrip():
                self.report(path, n, "trailing whitespace")

            if columns and len(line) > MAX_COLUMNS:
                self.report(path, n, "line longer than %d columns (%d)"
                            % (MAX_COLUMNS, len(line)))

    def check_python(self, path):
        text = read(path)
        if text is None:
            self.problems += 1
            return

        self.check_lines(path, text, columns=False)

        self.flush(path)

    # C

    def check_c(self, path):
        text = read(path)
        if text is None:
            self.problems += 1
            return

        self.check_lines(path, text, columns=True)

        code = self.strip(path, text)
        code = self.preprocessor(path, code)
        self.declarations(path, code)

        self.flush(path)

    def strip(self, path, text):
        """Blanks out comments, string and character literals (newlines
        are kept, so offsets still map to lines) and reports // comments.
        """

        out = []
        i = 0
        n = len(text)

        while i < n:
            c = text[i]

            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                end = n if end == -1 else end + 2
                out.append(blank(text[i:end]))
                i = end

            elif text.startswith("//", i):
                self.report(path, line_of(text, i), "// comment")
                end = text.find("\n", i)
                end = n if end == -1 else end
                out.append(blank(text[i:end]))
                i = end

            elif c == '"' or c == "'":
                j = i + 1
                while j < n and text[j] != c and text[j] != "\n":
                    j += 2 if text[j] == "\\" else 1
                j = min(j + 1, n)
                out.append(c + blank(text[i + 1:j - 1]) + c)
                i = j

            else:
                out.append(c)
                i += 1

        return "".join(out)

    def preprocessor(self, path, code):
        """Blanks out preprocessor lines (with their continuations),
        checking the names #define introduces."""

        lines = code.split("\n")
        i = 0

        while i < len(lines):
            if not lines[i].lstrip().startswith("#"):
                i += 1
                continue

            m = re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)", lines[i])
            if m and self.prefix:
                name = m.group(1)
                if (not name.startswith(MACRO_PREFIXES)
                        and name not in MACRO_ALLOWED):
                    self.report(path, i + 1,
                                "macro \"%s\" not prefixed NGX_HTTP_WSGI_"
                                " or ngx_http_wsgi_" % name)

            while True:
                cont = lines[i].rstrip().endswith("\\")
                lines[i] = ""
                i += 1
                if not cont or i >= len(lines):
                    break

        return "\n".join(lines)

    def declarations(self, path, code):
        """Splits the file scope into declarations: text at brace depth 0
        up to a ';', or up to the body of a function definition; inner
        brace blocks are kept as a single "{}" token."""

        tokens = []         # (text, offset) at depth 0
        depth = 0
        paren = 0

        for m in re.finditer(r"[A-Za-z_]\w*|\d\w*|\S", code):
            t = m.group(0)

            if depth > 0:
                if t == "{":
                    depth += 1
                elif t == "}":
                    depth -= 1
                continue

            if t == "(":
                paren += 1
            elif t == ")":
                paren -= 1

            if t == "{" and paren == 0:
                depth = 1
                is_body = bool(tokens) and tokens[-1][0] == ")"
                tokens.append(("{}", m.start()))

                if is_body:
                    self.declaration(path, code, tokens, definition=True)
                    tokens = []
                continue

            if t == "}":
                self.report(path, line_of(code, m.start()), "unbalanced }")
                continue

            if t == ";" and paren == 0:
                self.declaration(path, code, tokens, definition=False)
                tokens = []
                continue

            tokens.append((t, m.start()))

    def declaration(self, path, code, tokens, definition):
        if not tokens:
            return

        words = [t for t, _ in tokens]

        if words[0] == "extern":
            return

        if definition:
            self.function(path, code, tokens)
            return

        if words[0] == "typedef":
            self.typedef(path, code, tokens)
            return

        self.tags(path, code, tokens)

        if words[-1] == "{}" and "=" not in words:
            # a bare struct/union/enum definition: only the tag is named
            return

        # a prototype: the name is the identifier before the first "("
        # that is not a "(*name)" declarator

        for i, (t, off) in enumerate(tokens):
            if t in ("=", "["):
                break

            if t == "(":
                if i + 1 < len(tokens) and tokens[i + 1][0] == "*":
                    # function pointer variable: (*name)
                    if i + 2 < len(tokens):
                        self.name(path, code, *tokens[i + 2], "variable")
                    return

                if i > 0 and is_ident(tokens[i - 1][0]):
                    self.name(path, code, *tokens[i - 1], "function")
                return

        # variables: the declarators before "=", split at commas

        for name, off in declarators(tokens):
            self.name(path, code, name, off, "variable")

    def function(self, path, code, tokens):
        for i, (t, off) in enumerate(tokens):
            if t == "(" and i > 0 and is_ident(tokens[i - 1][0]):
                name, off = tokens[i - 1]
                break
        else:
            self.report(path, line_of(code, tokens[0][1]),
                        "cannot parse function definition")
            return

        self.tags(path, code, tokens[:i - 1])
        self.name(path, code, name, off, "function")

        line = line_of(code, off)

        if line_of(code, tokens[0][1]) == line:
            self.report(path, line,
                        "function \"%s\": return type not on its own line"
                        % name)

        elif column_of(code, off) != 0:
            self.report(path, line, "function \"%s\": name not at column 0"
                        % name)

    def typedef(self, path, code, tokens):
        self.tags(path, code, tokens)

        words = [t for t, _ in tokens]

        # function pointer type: typedef ret (*name)(args)
        for i in range(len(words) - 2):
            if words[i] == "(" and words[i + 1] == "*" \
               and is_ident(words[i + 2]):
                self.name(path, code, *tokens[i + 2], "type")
                return

        # otherwise the last identifier outside brackets
        depth = 0
        last = None
        for t, off in tokens:
            if t in "([":
                depth += 1
            elif t in ")]":
                depth -= 1
            elif depth == 0 and is_ident(t) and t not in KEYWORDS:
                last = (t, off)

        if last:
            self.name(path, code, *last, "type")

    def tags(self, path, code, tokens):
        for i in range(len(tokens) - 1):
            if tokens[i][0] in ("struct", "union", "enum") \
               and is_ident(tokens[i + 1][0]):
                # a definition (tag followed by a body) names a tag;
                # a use of someone else's tag ("struct sockaddr") does not
                if i + 2 < len(tokens) and tokens[i + 2][0] == "{}":
                    self.name(path, code, *tokens[i + 1], tokens[i][0])

    def name(self, path, code, name, off, kind):
        if not self.prefix or name.startswith(PREFIX):
            return

        self.report(path, line_of(code, off),
                    "%s \"%s\" not prefixed %s" % (kind, name, PREFIX))


def declarators(tokens):
    """Names declared by a variable declaration: for each comma-separated
    declarator, the last identifier before "=", "[" or the end."""

    names = []
    current = None
    skip = 0

    for t, off in tokens:
        if skip:
            if t in "([":
                skip += 1
            elif t in ")]":
                skip -= 1
            continue

        if t == "," and current is not None:
            names.append(current)
            current = None
            continue

        if t == "=":
            if current is not None:
                names.append(current)
            return names

        if t in "([":
            skip = 1
            continue

        if is_ident(t) and t not in KEYWORDS:
            current = (t, off)

    if current is not None:
        names.append(current)

    return names


def is_ident(t):
    return bool(IDENT.fullmatch(t))


def blank(s):
    return re.sub(r"[^\n]", " ", s)


def line_of(text, off):
    return text.count("\n", 0, off) + 1


def column_of(text, off):
    return off - (text.rfind("\n", 0, off) + 1)


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        print("%s:1: %s" % (os.path.relpath(path), e))
        return None


def c_files(top, suffixes):
    d = os.path.join(ROOT, top)
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.endswith(suffixes))


def default_files():
    c = c_files("src", (".c", ".h"))
    py = []

    for top in ("tests", "tools", "bench", "examples"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames
                                 if d != "__pycache__"
                                 and not d.startswith("."))
            py += sorted(os.path.join(dirpath, f) for f in filenames
                         if f.endswith((".py", ".wsgi")))

    return c, c_files("bench", (".c",)) + c_files("fuzz", (".c",)), py


def main(argv):
    prefix = True
    args = []

    for a in argv:
        if a == "--no-prefix":
            prefix = False
        elif a.startswith("-"):
            print(__doc__.strip(), file=sys.stderr)
            return 2
        else:
            args.append(a)

    other_c = []

    if args:
        c = [a for a in args if a.endswith((".c", ".h"))]
        py = [a for a in args if a not in c]
    else:
        c, other_c, py = default_files()

    checker = Checker(prefix=prefix)

    for path in c:
        checker.check_c(path)

    # the benchmarks' and the fuzzer's own programs: nginx's layout, their
    # own names
    tools = Checker(prefix=False)

    for path in other_c:
        tools.check_c(path)

    for path in py:
        checker.check_python(path)

    return 1 if checker.problems or tools.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
