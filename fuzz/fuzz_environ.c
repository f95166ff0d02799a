
/*
 * nginx mod_wsgi: a libFuzzer target for the byte-level converters, the
 * request's header names and mount points (snapshot.c), the application's
 * status lines and header names and values (header.c).
 *
 * The two files are compiled here with NGX_HTTP_WSGI_FUZZ, which leaves
 * out everything that needs nginx's runtime or Python; their static
 * functions are called as they are in the module.  Every input goes
 * through each converter on a copy of exactly its size (ASan sees a read
 * past it), and each result is checked against a plain reading of the
 * rule it implements.
 */


#include "../src/ngx_http_wsgi_snapshot.c"
#include "../src/ngx_http_wsgi_header.c"

#include <assert.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
ngx_int_t ngx_strncasecmp(u_char *s1, u_char *s2, size_t n);


typedef struct {
    ngx_http_wsgi_header_e       kind;
    const char                  *name;
} ngx_http_wsgi_fuzz_kind_t;


static ngx_http_wsgi_fuzz_kind_t  ngx_http_wsgi_fuzz_kinds[] = {
    { NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH, "content-length" },
    { NGX_HTTP_WSGI_HEADER_CONTENT_TYPE, "content-type" },
    { NGX_HTTP_WSGI_HEADER_DATE, "date" },
    { NGX_HTTP_WSGI_HEADER_SERVER, "server" },
    { NGX_HTTP_WSGI_HEADER_CONTENT_ENCODING, "content-encoding" },
    { NGX_HTTP_WSGI_HEADER_ETAG, "etag" },
    { NGX_HTTP_WSGI_HEADER_LAST_MODIFIED, "last-modified" },
    { 0, NULL }
};


static const char  *ngx_http_wsgi_fuzz_hop[] = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", NULL
};


/*
 * The one nginx runtime function the converters call, as nginx has it:
 * ASCII letters only, and the comparison ends at a NUL in both.
 */

ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    ngx_uint_t  c1, c2;

    while (n) {
        c1 = (ngx_uint_t) *s1++;
        c2 = (ngx_uint_t) *s2++;

        c1 = (c1 >= 'A' && c1 <= 'Z') ? (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (c2 | 0x20) : c2;

        if (c1 == c2) {

            if (c1) {
                n--;
                continue;
            }

            return 0;
        }

        return c1 - c2;
    }

    return 0;
}


static u_char *
ngx_http_wsgi_fuzz_copy(const u_char *p, size_t len)
{
    u_char  *copy;

    copy = malloc(len ? len : 1);
    assert(copy != NULL);

    if (len) {
        memcpy(copy, p, len);
    }

    return copy;
}


static int
ngx_http_wsgi_fuzz_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


/* p, len equal s in any case of ASCII letters */

static int
ngx_http_wsgi_fuzz_caseeq(const u_char *p, size_t len, const char *s)
{
    size_t  i;

    if (strlen(s) != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (ngx_http_wsgi_fuzz_lower(p[i]) != s[i]) {
            return 0;
        }
    }

    return 1;
}


/*
 * "HTTP_" and the name, upper case, '-' as '_', when the name is letters,
 * digits and '-' only; 0 for any other name.
 */

static void
ngx_http_wsgi_fuzz_header_key(const u_char *data, size_t len)
{
    int      valid;
    u_char  *name, *dst, c, want;
    size_t   i, n;

    name = ngx_http_wsgi_fuzz_copy(data, len);
    dst = malloc(len + 5);
    assert(dst != NULL);

    valid = (len > 0);

    for (i = 0; i < len; i++) {
        c = name[i];

        if (!(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
              || (c >= 'A' && c <= 'Z')))
        {
            valid = 0;
        }
    }

    n = ngx_http_wsgi_header_key(dst, name, len);

    assert(n == (valid ? len + 5 : 0));

    if (n) {
        assert(memcmp(dst, "HTTP_", 5) == 0);

        for (i = 0; i < len; i++) {
            c = dst[5 + i];
            assert(c == '_' || (c >= '0' && c <= '9')
                   || (c >= 'A' && c <= 'Z'));

            want = (name[i] == '-') ? '_'
                   : (name[i] >= 'a' && name[i] <= 'z')
                     ? name[i] - ('a' - 'A') : name[i];
            assert(c == want);
        }
    }

    free(dst);
    free(name);
}


/*
 * SCRIPT_NAME is the mount point when the path is the mount point or
 * continues it with '/', else empty; the split is never past the path.
 */

static void
ngx_http_wsgi_fuzz_script_name(const u_char *uri_data, size_t len,
    const u_char *mount_data, size_t mount_len)
{
    int      mounted;
    u_char  *uri, *mount;
    size_t   n;

    uri = ngx_http_wsgi_fuzz_copy(uri_data, len);
    mount = ngx_http_wsgi_fuzz_copy(mount_data, mount_len);

    n = ngx_http_wsgi_script_name(uri, len, mount, mount_len);

    mounted = mount_len > 0
              && len >= mount_len
              && memcmp(uri, mount, mount_len) == 0
              && (len == mount_len || uri[mount_len] == '/');

    assert(n <= len);
    assert(n == (mounted ? mount_len : 0));

    free(mount);
    free(uri);
}


/* "NNN reason", N a digit and the first not 0; no control in the reason */

static void
ngx_http_wsgi_fuzz_status(const u_char *data, size_t len)
{
    u_char     *p;
    size_t      i;
    ngx_int_t   code, want;

    p = ngx_http_wsgi_fuzz_copy(data, len);

    code = ngx_http_wsgi_status_code(p, len);

    if (len < 4 || !(p[0] >= '1' && p[0] <= '9')
        || !(p[1] >= '0' && p[1] <= '9') || !(p[2] >= '0' && p[2] <= '9')
        || p[3] != ' ')
    {
        want = 0;

    } else {
        want = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');

        for (i = 4; i < len; i++) {
            if (p[i] == 0x7f || (p[i] < 0x20 && p[i] != '\t')) {
                want = NGX_ERROR;
            }
        }
    }

    assert(code == want);
    assert(code == 0 || code == NGX_ERROR || (code >= 100 && code <= 999));

    free(p);
}


/*
 * A header name is a token of RFC 9110; its kind and whether it is
 * hop-by-hop go by its name in any case.
 */

static void
ngx_http_wsgi_fuzz_header_name(const u_char *data, size_t len)
{
    int                         token, hop;
    u_char                     *p, c;
    size_t                      i;
    ngx_http_wsgi_header_e      kind;
    ngx_http_wsgi_fuzz_kind_t  *k;

    p = ngx_http_wsgi_fuzz_copy(data, len);

    token = (len > 0);

    for (i = 0; i < len; i++) {
        c = p[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
              || (c >= 'A' && c <= 'Z')
              || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL)))
        {
            token = 0;
        }
    }

    assert(ngx_http_wsgi_header_name_valid(p, len) == token);

    kind = ngx_http_wsgi_header_kind(p, len);

    for (k = ngx_http_wsgi_fuzz_kinds; k->name; k++) {
        if (ngx_http_wsgi_fuzz_caseeq(p, len, k->name)) {
            break;
        }
    }

    assert(kind == (k->name ? k->kind : NGX_HTTP_WSGI_HEADER_OTHER));

    hop = 0;

    for (i = 0; ngx_http_wsgi_fuzz_hop[i]; i++) {
        if (ngx_http_wsgi_fuzz_caseeq(p, len, ngx_http_wsgi_fuzz_hop[i])) {
            hop = 1;
        }
    }

    assert(ngx_http_wsgi_hop_by_hop(p, len) == hop);

    free(p);
}


/* a header value: anything but CR, LF and NUL */

static void
ngx_http_wsgi_fuzz_header_value(const u_char *data, size_t len)
{
    int      valid;
    u_char  *p;

    p = ngx_http_wsgi_fuzz_copy(data, len);

    valid = memchr(p, '\r', len) == NULL && memchr(p, '\n', len) == NULL
            && memchr(p, '\0', len) == NULL;

    assert(ngx_http_wsgi_header_value_valid(p, len) == valid);

    free(p);
}


/*
 * The whole input is a header name, a status line and a header value.
 * For SCRIPT_NAME, its first byte tells how much of the rest is the mount
 * point, the remainder is the path; and the same mount point is tried on
 * the mount point followed by the remainder.
 */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *joined;
    size_t   n, rest;

    ngx_http_wsgi_fuzz_header_key(data, size);
    ngx_http_wsgi_fuzz_status(data, size);
    ngx_http_wsgi_fuzz_header_name(data, size);
    ngx_http_wsgi_fuzz_header_value(data, size);

    if (size == 0) {
        return 0;
    }

    rest = size - 1;
    n = ngx_min((size_t) data[0], rest);

    ngx_http_wsgi_fuzz_script_name(data + 1 + n, rest - n, data + 1, n);

    joined = ngx_http_wsgi_fuzz_copy(data + 1, rest);
    ngx_http_wsgi_fuzz_script_name(joined, rest, data + 1, n);
    free(joined);

    return 0;
}
