
/*
 * nginx mod_wsgi: the response's status line and headers, validated by
 * start_response() on the Python side (first half), applied to headers_out
 * and sent by the nginx side after the step (second half).
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_KINDS  32     /* header kinds kept between passes */


static ngx_int_t ngx_http_wsgi_status_code(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_header_name_valid(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_header_value_valid(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_hop_by_hop(u_char *p, size_t len);
static ngx_http_wsgi_header_e ngx_http_wsgi_header_kind(u_char *p,
    size_t len);

#if !(NGX_HTTP_WSGI_FUZZ)
static ngx_int_t ngx_http_wsgi_latin1(PyObject *s, u_char **data,
    size_t *len);
static ngx_int_t ngx_http_wsgi_header_name(ngx_http_wsgi_state_t *st,
    PyObject *name, ngx_uint_t *kind);
static ngx_int_t ngx_http_wsgi_header_value(ngx_http_wsgi_state_t *st,
    PyObject *name, PyObject *value);
#endif


static ngx_str_t  ngx_http_wsgi_hop_by_hop_headers[] = {
    ngx_string("connection"),
    ngx_string("keep-alive"),
    ngx_string("proxy-authenticate"),
    ngx_string("proxy-authorization"),
    ngx_string("proxy-connection"),
    ngx_string("te"),
    ngx_string("trailer"),
    ngx_string("trailers"),
    ngx_string("transfer-encoding"),
    ngx_string("upgrade"),
    ngx_null_string
};


/* the tchar of RFC 9110: "!#$%&'*+-.^_`|~", digits and letters */

static uint32_t  ngx_http_wsgi_tchar[] = {
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0x03ff6cfa, /* 0000 0011 1111 1111  0110 1100 1111 1010 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0xc7fffffe, /* 1100 0111 1111 1111  1111 1111 1111 1110 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0x57ffffff, /* 0101 0111 1111 1111  1111 1111 1111 1111 */

    0x00000000, /* 0x80 - 0xff: none */
    0x00000000,
    0x00000000,
    0x00000000
};


/* the code of a "NNN reason" line; 0: not one, NGX_ERROR: a control char */

static ngx_int_t
ngx_http_wsgi_status_code(u_char *p, size_t len)
{
    size_t  i;

    if (len < 4
        || p[0] < '1' || p[0] > '9'
        || !ngx_http_wsgi_isdigit(p[1]) || !ngx_http_wsgi_isdigit(p[2])
        || p[3] != ' ')
    {
        return 0;
    }

    for (i = 4; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            return NGX_ERROR;
        }
    }

    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}


static ngx_int_t
ngx_http_wsgi_header_name_valid(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!(ngx_http_wsgi_tchar[p[i] >> 5] & (1U << (p[i] & 0x1f)))) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_wsgi_header_value_valid(u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] == CR || p[i] == LF || p[i] == '\0') {
            return 0;
        }
    }

    return 1;
}


static ngx_http_wsgi_header_e
ngx_http_wsgi_header_kind(u_char *p, size_t len)
{
    /* as most applications spell them, or in any case */

#define ngx_http_wsgi_is(name)                                                \
    (len == sizeof(name) - 1                                                  \
     && (ngx_memcmp(p, name, len) == 0                                        \
         || ngx_strncasecmp(p, (u_char *) name, len) == 0))

    switch (len) {

    case 4:
        if (ngx_http_wsgi_is("Date")) {
            return NGX_HTTP_WSGI_HEADER_DATE;
        }

        if (ngx_http_wsgi_is("ETag")) {
            return NGX_HTTP_WSGI_HEADER_ETAG;
        }

        break;

    case 6:
        if (ngx_http_wsgi_is("Server")) {
            return NGX_HTTP_WSGI_HEADER_SERVER;
        }

        break;

    case 12:
        if (ngx_http_wsgi_is("Content-Type")) {
            return NGX_HTTP_WSGI_HEADER_CONTENT_TYPE;
        }

        break;

    case 13:
        if (ngx_http_wsgi_is("Last-Modified")) {
            return NGX_HTTP_WSGI_HEADER_LAST_MODIFIED;
        }

        break;

    case 14:
        if (ngx_http_wsgi_is("Content-Length")) {
            return NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH;
        }

        break;

    case 16:
        if (ngx_http_wsgi_is("Content-Encoding")) {
            return NGX_HTTP_WSGI_HEADER_CONTENT_ENCODING;
        }

        break;
    }

#undef ngx_http_wsgi_is

    return NGX_HTTP_WSGI_HEADER_OTHER;
}


static ngx_int_t
ngx_http_wsgi_hop_by_hop(u_char *p, size_t len)
{
    ngx_str_t  *h;

    for (h = ngx_http_wsgi_hop_by_hop_headers; h->len; h++) {
        if (h->len == len && ngx_strncasecmp(p, h->data, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * The byte-level checks above need neither nginx's runtime nor Python:
 * fuzz/fuzz_environ.c compiles this file with NGX_HTTP_WSGI_FUZZ for them.
 */

#if !(NGX_HTTP_WSGI_FUZZ)


/* Python side: start_response(), in a step, holding the GIL */


/* a latin-1 str keeps a byte per character: no copy; else NGX_DECLINED */

static ngx_int_t
ngx_http_wsgi_latin1(PyObject *s, u_char **data, size_t *len)
{
    *data = NULL;
    *len = 0;

    if (ngx_http_wsgi_str_ready(s) != 0) {
        return NGX_ERROR;
    }

    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return NGX_DECLINED;
    }

    *data = PyUnicode_1BYTE_DATA(s);
    *len = PyUnicode_GET_LENGTH(s);

    return NGX_OK;
}


ngx_int_t
ngx_http_wsgi_status_parse(ngx_http_wsgi_ctx_t *ctx, PyObject *status)
{
    u_char     *p;
    size_t      len;
    ngx_int_t   rc, code;

    rc = ngx_http_wsgi_latin1(status, &p, &len);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        PyErr_SetString(PyExc_ValueError, "start_response() status must be "
                        "latin-1 text");
        return NGX_ERROR;
    }

    code = ngx_http_wsgi_status_code(p, len);

    if (code == 0) {
        PyErr_Format(PyExc_ValueError, "start_response() status %R is not "
                     "\"NNN reason\"", status);
        return NGX_ERROR;
    }

    if (code == NGX_ERROR) {
        PyErr_Format(PyExc_ValueError, "start_response() status %R "
                     "contains a control character", status);
        return NGX_ERROR;
    }

    if (code < 200) {
        PyErr_Format(PyExc_ValueError, "start_response() status %R: "
                     "informational responses are not supported", status);
        return NGX_ERROR;
    }

    /* str is immutable: its bytes stay as they are while it is held */

    Py_XSETREF(ctx->status, Py_NewRef(status));
    ctx->status_line.data = p;
    ctx->status_line.len = len;
    ctx->status_code = (ngx_uint_t) code;

    return NGX_OK;
}


/* one bytes object: the list, then the names and values it points at */

PyObject *
ngx_http_wsgi_headers_parse(PyObject *headers, ngx_http_wsgi_header_t **list,
    ngx_uint_t *nheaders, off_t *length)
{
    u_char                  *p, *name, *value;
    size_t                   size, nlen, vlen;
    PyObject                *item, *block;
    ngx_int_t                n;
    ngx_uint_t               k;
    Py_ssize_t               i, count;
    ngx_http_wsgi_state_t   *st;
    ngx_http_wsgi_header_t  *h;
    u_char                   kinds[NGX_HTTP_WSGI_KINDS];

    *length = -1;

    st = ngx_http_wsgi_state();

    count = PyList_GET_SIZE(headers);

    size = 0;

    for (i = 0; i < count; i++) {
        /* borrowed */
        item = PyList_GET_ITEM(headers, i);

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "start_response() header %zd "
                         "must be a (name, value) tuple, not %.200s",
                         i, Py_TYPE(item)->tp_name);
            return NULL;
        }

        if (!PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_Format(PyExc_TypeError, "start_response() header name "
                         "must be str, not %.200s",
                         Py_TYPE(PyTuple_GET_ITEM(item, 0))->tp_name);
            return NULL;
        }

        if (!PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_Format(PyExc_TypeError, "start_response() value of header "
                         "%R must be str, not %.200s",
                         PyTuple_GET_ITEM(item, 0),
                         Py_TYPE(PyTuple_GET_ITEM(item, 1))->tp_name);
            return NULL;
        }

        if (ngx_http_wsgi_header_name(st, PyTuple_GET_ITEM(item, 0), &k)
            != NGX_OK
            || ngx_http_wsgi_header_value(st, PyTuple_GET_ITEM(item, 0),
                                          PyTuple_GET_ITEM(item, 1))
               != NGX_OK)
        {
            return NULL;
        }

        (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, 0), &name, &nlen);
        (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, 1), &value, &vlen);

        if (i < NGX_HTTP_WSGI_KINDS) {
            kinds[i] = (u_char) k;
        }

        if (k == NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH) {
            n = ngx_atoof(value, vlen);

            if (n == NGX_ERROR || *length != -1) {
                PyErr_Format(PyExc_ValueError, "start_response() has an "
                             "invalid or repeated Content-Length %R",
                             PyTuple_GET_ITEM(item, 1));
                return NULL;
            }

            *length = n;
        }

        size += nlen + vlen;
    }

    size += NGX_ALIGNMENT + count * sizeof(ngx_http_wsgi_header_t);

    block = PyBytes_FromStringAndSize(NULL, size);
    if (block == NULL) {
        return NULL;
    }

    /* validated above, and the strs in the tuples cannot have changed */

    h = (ngx_http_wsgi_header_t *) ngx_align_ptr(PyBytes_AS_STRING(block),
                                                 NGX_ALIGNMENT);
    p = (u_char *) (h + count);

    for (i = 0; i < count; i++) {
        item = PyList_GET_ITEM(headers, i);

        (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, 0), &name, &nlen);
        (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, 1), &value, &vlen);

        h[i].kind = (i < NGX_HTTP_WSGI_KINDS)
                    ? kinds[i] : ngx_http_wsgi_header_kind(name, nlen);

        h[i].name.len = nlen;
        h[i].name.data = p;
        p = ngx_cpymem(p, name, nlen);

        h[i].value.len = vlen;
        h[i].value.data = p;
        p = ngx_cpymem(p, value, vlen);
    }

    *list = h;
    *nheaders = count;

    return block;
}


#define ngx_http_wsgi_checked_slot(st, obj)                                   \
    (&(st)->checked[((uintptr_t) (obj) >> 4) % NGX_HTTP_WSGI_CHECKED])


/* a valid name, its kind; a str found valid before is not looked at again */

static ngx_int_t
ngx_http_wsgi_header_name(ngx_http_wsgi_state_t *st, PyObject *name,
    ngx_uint_t *kind)
{
    u_char                   *p;
    size_t                    len;
    ngx_int_t                 rc;
    ngx_http_wsgi_checked_t  *c;

    c = ngx_http_wsgi_checked_slot(st, name);

    if (c->str == name && c->kind != NGX_HTTP_WSGI_CHECKED_VALUE) {
        *kind = c->kind;
        return NGX_OK;
    }

    rc = ngx_http_wsgi_latin1(name, &p, &len);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED || !ngx_http_wsgi_header_name_valid(p, len)) {
        PyErr_Format(PyExc_ValueError, "start_response() header name %R "
                     "is not a valid HTTP token", name);
        return NGX_ERROR;
    }

    if (ngx_http_wsgi_hop_by_hop(p, len)) {
        PyErr_Format(PyExc_ValueError, "start_response() header %R "
                     "is hop-by-hop and not allowed in a WSGI "
                     "response", name);
        return NGX_ERROR;
    }

    *kind = ngx_http_wsgi_header_kind(p, len);

    Py_XSETREF(c->str, Py_NewRef(name));
    c->kind = *kind;

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_header_value(ngx_http_wsgi_state_t *st, PyObject *name,
    PyObject *value)
{
    u_char                   *p;
    size_t                    len;
    ngx_int_t                 rc;
    ngx_http_wsgi_checked_t  *c;

    c = ngx_http_wsgi_checked_slot(st, value);

    if (c->str == value && c->kind == NGX_HTTP_WSGI_CHECKED_VALUE) {
        return NGX_OK;
    }

    rc = ngx_http_wsgi_latin1(value, &p, &len);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        PyErr_Format(PyExc_ValueError, "start_response() value of header "
                     "%R is not latin-1 text", name);
        return NGX_ERROR;
    }

    if (!ngx_http_wsgi_header_value_valid(p, len)) {
        PyErr_Format(PyExc_ValueError, "start_response() value of "
                     "header %R contains CR, LF or NUL", name);
        return NGX_ERROR;
    }

    Py_XSETREF(c->str, Py_NewRef(value));
    c->kind = NGX_HTTP_WSGI_CHECKED_VALUE;

    return NGX_OK;
}


/* nginx side: the header goes out, on the event loop */

ngx_int_t
ngx_http_wsgi_send_header(ngx_http_wsgi_ctx_t *ctx)
{
    u_char                    *v, *last;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_table_elt_t           *h;
    ngx_http_request_t        *r;
    ngx_http_wsgi_header_t    *header;
    ngx_http_wsgi_loc_conf_t  *wlcf;

    r = ctx->request;

    r->headers_out.status = ctx->status_code;
    r->headers_out.status_line = ctx->status_line;

    /* their bytes stay pinned by the context until its cleanup */

    for (i = 0; i < ctx->nheaders; i++) {
        header = &ctx->header[i];

        if (header->kind == NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH) {
            r->headers_out.content_length_n = ctx->length;
            continue;
        }

        if (header->kind == NGX_HTTP_WSGI_HEADER_CONTENT_TYPE) {
            r->headers_out.content_type = header->value;
            r->headers_out.content_type_len = header->value.len;

            last = header->value.data + header->value.len;

            for (v = header->value.data; v < last; v++) {
                if (*v == ';' || *v == ' ') {
                    r->headers_out.content_type_len = v - header->value.data;
                    break;
                }
            }

            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = header->name;
        h->value = header->value;
        h->lowcase_key = NULL;

        /* the application's own Date and Server replace nginx's */

        switch (header->kind) {

        case NGX_HTTP_WSGI_HEADER_DATE:
            r->headers_out.date = h;
            break;

        case NGX_HTTP_WSGI_HEADER_SERVER:
            r->headers_out.server = h;
            break;

        case NGX_HTTP_WSGI_HEADER_CONTENT_ENCODING:
            r->headers_out.content_encoding = h;
            break;

        case NGX_HTTP_WSGI_HEADER_ETAG:
            /* for If-None-Match, If-Match and If-Range */
            r->headers_out.etag = h;
            break;

        case NGX_HTTP_WSGI_HEADER_LAST_MODIFIED:
            /* for If-Modified-Since and If-Unmodified-Since */
            r->headers_out.last_modified = h;
            r->headers_out.last_modified_time =
                              ngx_parse_http_time(h->value.data, h->value.len);
            break;

        default:
            break;
        }
    }

    if (ctx->retire) {

        /* the worker retires for new code: the client should ask again */

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Refresh");
        ngx_str_set(&h->value, "0");
        h->lowcase_key = NULL;

        ngx_quit = 1;
    }

    /*
     * ours when the whole body is known; not 0 for HEAD, as in Apache: an
     * application that answers HEAD without a body does not know its length
     */

    if (ctx->length < 0
        && !(ctx->add_length == 0 && r->method == NGX_HTTP_HEAD))
    {
        r->headers_out.content_length_n = ctx->add_length;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wsgi_module);

    /* other methods did their work already: preconditions are the app's */

    if (!wlcf->cache_validation
        || !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        r->disable_not_modified = 1;
    }

    if (wlcf->allow_ranges
        && ctx->status_code == NGX_HTTP_OK
        && r->headers_out.content_length_n >= 0)
    {
        r->allow_ranges = 1;
    }

    /* with the application's status line, nginx misses bodiless statuses */

    if (ctx->status_code == NGX_HTTP_NO_CONTENT
        || ctx->status_code == NGX_HTTP_NOT_MODIFIED)
    {
        r->header_only = 1;
        r->headers_out.content_length_n = -1;

        if (ctx->status_code == NGX_HTTP_NO_CONTENT) {
            ngx_str_null(&r->headers_out.content_type);
            r->headers_out.content_type_len = 0;
        }
    }

    ctx->header_sent = 1;

    rc = ngx_http_send_header(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi header sent: %ui, rc: %i", ctx->status_code, rc);

    if (r->header_only) {
        ctx->header_only = 1;
    }

    return rc;
}


#endif /* !(NGX_HTTP_WSGI_FUZZ) */
