
/*
 * nginx mod_wsgi: start_response() and write().
 */


#include "ngx_http_wsgi_module.h"
#include <structmember.h>
#include <poll.h>


#define NGX_HTTP_WSGI_KINDS  32     /* header kinds kept between passes */


/*
 * ngx.StartResponse: the start_response callable of one request.
 * Created by the call step, owned by the context; the application may keep
 * references.  Expires (ctx = NULL) when its request is closed: afterwards
 * calling it or its write() raises RuntimeError.
 *
 * The write() it returns and environ["ngx.client_connected"] are small
 * objects of their own that reference it; it references nothing, so none
 * of the three can be part of a cycle and none needs the cyclic GC.
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc           vectorcall;
    ngx_http_wsgi_ctx_t     *ctx;
} ngx_http_wsgi_start_response_t;


/* ngx.Write and ngx.ClientConnected */

typedef struct {
    PyObject_HEAD
    vectorcallfunc                   vectorcall;
    ngx_http_wsgi_start_response_t  *sr;    /* owned */
} ngx_http_wsgi_bound_t;


static PyObject *ngx_http_wsgi_start_response_call(PyObject *self,
    PyObject *const *args, size_t nargsf, PyObject *kwnames);
static PyObject *ngx_http_wsgi_bound_new(PyObject *type, PyObject *sr,
    vectorcallfunc call);
static void ngx_http_wsgi_bound_dealloc(PyObject *self);
static PyObject *ngx_http_wsgi_write_call(PyObject *self,
    PyObject *const *args, size_t nargsf, PyObject *kwnames);
static PyObject *ngx_http_wsgi_client_connected_call(PyObject *self,
    PyObject *const *args, size_t nargsf, PyObject *kwnames);
static void ngx_http_wsgi_start_response_dealloc(PyObject *self);
static ngx_int_t ngx_http_wsgi_latin1(PyObject *s, u_char **data,
    size_t *len);
static ngx_int_t ngx_http_wsgi_status_parse(ngx_http_wsgi_ctx_t *ctx,
    PyObject *status);
static PyObject *ngx_http_wsgi_headers_parse(PyObject *headers,
    ngx_uint_t *nheaders, off_t *length);
static ngx_int_t ngx_http_wsgi_header_name(ngx_http_wsgi_state_t *st,
    PyObject *name, ngx_uint_t *kind);
static ngx_int_t ngx_http_wsgi_header_value(ngx_http_wsgi_state_t *st,
    PyObject *name, PyObject *value);
static ngx_int_t ngx_http_wsgi_status_code(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_header_name_valid(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_header_value_valid(u_char *p, size_t len);
static ngx_int_t ngx_http_wsgi_hop_by_hop(u_char *p, size_t len);
static ngx_http_wsgi_header_e ngx_http_wsgi_header_kind(u_char *p,
    size_t len);


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


/*
 * The code of a "NNN reason" status line; 0: it is not one, NGX_ERROR: its
 * reason has a control character.
 */

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


static PyMemberDef  ngx_http_wsgi_start_response_members[] = {
    { "__vectorcalloffset__", T_PYSSIZET,
      offsetof(ngx_http_wsgi_start_response_t, vectorcall), READONLY, NULL },
    { NULL, 0, 0, 0, NULL }
};


static PyType_Slot  ngx_http_wsgi_start_response_slots[] = {
    { Py_tp_call, PyVectorcall_Call },
    { Py_tp_members, ngx_http_wsgi_start_response_members },
    { Py_tp_dealloc, ngx_http_wsgi_start_response_dealloc },
    { Py_tp_doc, "start_response(status, response_headers, exc_info=None): "
                 "the PEP 3333 start_response callable" },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_start_response_spec = {
    "ngx.StartResponse",
    sizeof(ngx_http_wsgi_start_response_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL
    | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_start_response_slots
};


static PyMemberDef  ngx_http_wsgi_bound_members[] = {
    { "__vectorcalloffset__", T_PYSSIZET,
      offsetof(ngx_http_wsgi_bound_t, vectorcall), READONLY, NULL },
    { NULL, 0, 0, 0, NULL }
};


static PyType_Slot  ngx_http_wsgi_write_slots[] = {
    { Py_tp_call, PyVectorcall_Call },
    { Py_tp_members, ngx_http_wsgi_bound_members },
    { Py_tp_dealloc, ngx_http_wsgi_bound_dealloc },
    { Py_tp_doc, "write(data): the PEP 3333 write() callable" },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_write_spec = {
    "ngx.Write",
    sizeof(ngx_http_wsgi_bound_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL
    | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_write_slots
};


static PyType_Slot  ngx_http_wsgi_client_connected_slots[] = {
    { Py_tp_call, PyVectorcall_Call },
    { Py_tp_members, ngx_http_wsgi_bound_members },
    { Py_tp_dealloc, ngx_http_wsgi_bound_dealloc },
    { Py_tp_doc, "client_connected(): False once the client has gone away" },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_client_connected_spec = {
    "ngx.ClientConnected",
    sizeof(ngx_http_wsgi_bound_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL
    | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_client_connected_slots
};


PyObject *
ngx_http_wsgi_start_response_new(ngx_http_wsgi_ctx_t *ctx)
{
    PyTypeObject                    *type;
    ngx_http_wsgi_start_response_t  *sr;

    type = (PyTypeObject *) ngx_http_wsgi_state()->start_response_type;

    sr = PyObject_New(ngx_http_wsgi_start_response_t, type);
    if (sr == NULL) {
        return NULL;
    }

    sr->vectorcall = ngx_http_wsgi_start_response_call;
    sr->ctx = ctx;

    return (PyObject *) sr;
}


/* environ["ngx.client_connected"] */

PyObject *
ngx_http_wsgi_start_response_connected(PyObject *sr)
{
    return ngx_http_wsgi_bound_new(
                        ngx_http_wsgi_state()->client_connected_type, sr,
                        ngx_http_wsgi_client_connected_call);
}


/* environ["ngx.client_connected"] of another request */

void
ngx_http_wsgi_start_response_rebind(PyObject *connected, PyObject *sr)
{
    Py_SETREF(((ngx_http_wsgi_bound_t *) connected)->sr,
              (ngx_http_wsgi_start_response_t *) Py_NewRef(sr));
}


void
ngx_http_wsgi_start_response_expire(PyObject *self)
{
    ((ngx_http_wsgi_start_response_t *) self)->ctx = NULL;
}


static PyObject *
ngx_http_wsgi_bound_new(PyObject *type, PyObject *sr, vectorcallfunc call)
{
    ngx_http_wsgi_bound_t  *b;

    b = PyObject_New(ngx_http_wsgi_bound_t, (PyTypeObject *) type);
    if (b == NULL) {
        return NULL;
    }

    b->vectorcall = call;
    b->sr = (ngx_http_wsgi_start_response_t *) Py_NewRef(sr);

    return (PyObject *) b;
}


static void
ngx_http_wsgi_bound_dealloc(PyObject *self)
{
    PyTypeObject  *type;

    type = Py_TYPE(self);

    Py_DECREF(((ngx_http_wsgi_bound_t *) self)->sr);
    type->tp_free(self);
    Py_DECREF(type);
}


static void
ngx_http_wsgi_start_response_dealloc(PyObject *self)
{
    PyTypeObject  *type;

    type = Py_TYPE(self);

    type->tp_free(self);
    Py_DECREF(type);
}


static PyObject *
ngx_http_wsgi_start_response_call(PyObject *self, PyObject *const *args,
    size_t nargsf, PyObject *kwnames)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    off_t                 length;
    PyObject             *argv[3], *status, *headers, *exc_info, *block;
    PyObject             *name;
    Py_ssize_t            i, k, nargs, nkw;
    ngx_uint_t            nheaders;
    ngx_http_wsgi_ctx_t  *ctx;

    static const char  *names[] = { "status", "response_headers",
                                    "exc_info" };

    nargs = PyVectorcall_NARGS(nargsf);
    nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "start_response() takes at most 3 "
                     "arguments (%zd given)", nargs);
        return NULL;
    }

    argv[0] = NULL;
    argv[1] = NULL;
    argv[2] = NULL;

    for (i = 0; i < nargs; i++) {
        argv[i] = args[i];
    }

    for (i = 0; i < nkw; i++) {
        /* borrowed */
        name = PyTuple_GET_ITEM(kwnames, i);

        for (k = 0; k < 3; k++) {
            if (PyUnicode_CompareWithASCIIString(name, names[k]) == 0) {
                break;
            }
        }

        if (k == 3) {
            PyErr_Format(PyExc_TypeError, "start_response() got an "
                         "unexpected keyword argument %R", name);
            return NULL;
        }

        if (argv[k] != NULL) {
            PyErr_Format(PyExc_TypeError, "start_response() got multiple "
                         "values for argument '%s'", names[k]);
            return NULL;
        }

        argv[k] = args[nargs + i];
    }

    for (k = 0; k < 2; k++) {
        if (argv[k] == NULL) {
            PyErr_Format(PyExc_TypeError, "start_response() missing "
                         "required argument '%s'", names[k]);
            return NULL;
        }
    }

    status = argv[0];
    headers = argv[1];
    exc_info = argv[2] ? argv[2] : Py_None;
    nheaders = 0;

    ctx = sr->ctx;

    if (ctx == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() called after its request ended");
        return NULL;
    }

    if (exc_info != Py_None) {
        if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
            PyErr_Format(PyExc_TypeError, "start_response() argument 3 "
                         "must be a sys.exc_info() tuple, not %.200s",
                         Py_TYPE(exc_info)->tp_name);
            return NULL;
        }

        if (ctx->committed) {

            /* the headers are out: PEP 3333 says re-raise */

            PyErr_Restore(Py_NewRef(PyTuple_GET_ITEM(exc_info, 0)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 1)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 2)));
            return NULL;
        }

    } else if (ctx->started) {
        PyErr_SetString(PyExc_RuntimeError, "start_response() called twice "
                        "without exc_info");
        return NULL;
    }

    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "start_response() argument 1 must be "
                     "str, not %.200s", Py_TYPE(status)->tp_name);
        return NULL;
    }

    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "start_response() argument 2 must be "
                     "list, not %.200s", Py_TYPE(headers)->tp_name);
        return NULL;
    }

    if (ngx_http_wsgi_status_parse(ctx, status) != NGX_OK) {
        return NULL;
    }

    block = ngx_http_wsgi_headers_parse(headers, &nheaders, &length);
    if (block == NULL) {
        return NULL;
    }

    if (ctx->started) {
        /* exc_info: an error page replaces what write() held back */
        ngx_http_wsgi_spool_discard(ctx);
    }

    Py_XSETREF(ctx->headers, block);
    ctx->header_block = (u_char *) PyBytes_AS_STRING(block);
    ctx->nheaders = nheaders;
    ctx->length = length;
    ctx->started = 1;

    return ngx_http_wsgi_bound_new(ngx_http_wsgi_state()->write_type, self,
                                   ngx_http_wsgi_write_call);
}


/*
 * The latin-1 bytes of a str, without a copy: a str whose characters all
 * fit in latin-1 keeps them as one byte each.  NGX_DECLINED: it has
 * others.
 */

static ngx_int_t
ngx_http_wsgi_latin1(PyObject *s, u_char **data, size_t *len)
{
    if (PyUnicode_READY(s) != 0) {
        return NGX_ERROR;
    }

    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return NGX_DECLINED;
    }

    *data = PyUnicode_1BYTE_DATA(s);
    *len = PyUnicode_GET_LENGTH(s);

    return NGX_OK;
}


static ngx_int_t
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


/*
 * Validates the headers and packs them for the nginx side into one bytes
 * object, latin-1 as PEP 3333 requires: for each header its kind (a byte,
 * ngx_http_wsgi_header_e), "name\0value\0".
 */

static PyObject *
ngx_http_wsgi_headers_parse(PyObject *headers, ngx_uint_t *nheaders,
    off_t *length)
{
    u_char                 *p, *name, *value;
    size_t                  size, nlen, vlen;
    PyObject               *item, *block;
    ngx_int_t               n;
    ngx_uint_t              k;
    Py_ssize_t              i, count;
    ngx_http_wsgi_state_t  *st;
    u_char                  kinds[NGX_HTTP_WSGI_KINDS];

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

        size += 1 + nlen + vlen + 2;
    }

    block = PyBytes_FromStringAndSize(NULL, size);
    if (block == NULL) {
        return NULL;
    }

    /* validated above, and the strs in the tuples cannot have changed */

    p = (u_char *) PyBytes_AS_STRING(block);

    for (i = 0; i < count; i++) {
        item = PyList_GET_ITEM(headers, i);

        (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, 0), &name, &nlen);

        *p++ = (i < NGX_HTTP_WSGI_KINDS)
               ? kinds[i] : (u_char) ngx_http_wsgi_header_kind(name, nlen);

        for (n = 0; n < 2; n++) {
            (void) ngx_http_wsgi_latin1(PyTuple_GET_ITEM(item, n), &name,
                                        &nlen);
            p = ngx_cpymem(p, name, nlen);
            *p++ = '\0';
        }
    }

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


static PyObject *
ngx_http_wsgi_write_call(PyObject *self, PyObject *const *args,
    size_t nargsf, PyObject *kwnames)
{
    PyObject             *data;
    ngx_int_t             rc;
    ngx_http_wsgi_ctx_t  *ctx;

    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "write() takes exactly one "
                        "positional argument");
        return NULL;
    }

    data = args[0];
    ctx = ((ngx_http_wsgi_bound_t *) self)->sr->ctx;

    if (ctx == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called after its request ended");
        return NULL;
    }

    if (!ctx->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called before start_response()");
        return NULL;
    }

    if (PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "write() argument must be bytes, "
                        "not str");
        return NULL;
    }

    if (!PyObject_CheckBuffer(data)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be bytes, "
                     "not %.200s", Py_TYPE(data)->tp_name);
        return NULL;
    }

    if (ctx->client_gone) {
        PyErr_SetString(PyExc_OSError, "write(): client disconnected");
        return NULL;
    }

    switch (ctx->body) {

    case NGX_HTTP_WSGI_BODY_FAILED:
        PyErr_SetString(PyExc_RuntimeError, "write() called from close() "
                        "of a response that failed");
        return NULL;

    case NGX_HTTP_WSGI_BODY_STOPPED:
        /* nobody wants the body: dropped with the rest of it */
        Py_RETURN_NONE;

    case NGX_HTTP_WSGI_BODY_COMPLETE:

        /* the body goes on, as in Apache mod_wsgi, unless its length is out */

        if (ctx->add_length >= 0 || ctx->spool_all) {
            PyErr_SetString(PyExc_RuntimeError, "write() called from "
                            "close() after the response's length was set");
            return NULL;
        }

        if (ctx->length < 0 || ctx->produced < ctx->length) {
            break;
        }

        /* fall through */

    default:
        if (ngx_http_wsgi_done(ctx)) {
            /* past the Content-Length: dropped, as the iterable's would be */
            Py_RETURN_NONE;
        }
    }

    if (ctx->step_ts != PyThreadState_Get()
        && ctx->inside == NGX_HTTP_WSGI_INSIDE_STEP)
    {
        /* the step or the nginx side has the output */
        PyErr_SetString(PyExc_RuntimeError, "write() called from a thread "
                        "other than the request's");
        return NULL;
    }

    if (ctx->py_waiting) {
        /* another thread's write() or wsgi.input waits, on a pool */
        ngx_http_wsgi_thread_turn(ctx);
    }

    if (ngx_http_wsgi_step_chunk(ctx, data, "write() argument") != NGX_OK) {
        /* cannot happen for bytes-like data after the checks above */
        PyErr_SetString(PyExc_RuntimeError, "write() failed");
        return NULL;
    }

    if (ctx->thread_pool && ctx->nout) {

        /* on a pool thread: the data goes out now, and write() waits */

        do {
            rc = ngx_http_wsgi_thread_wait(ctx, 0);
        } while (rc == NGX_AGAIN && ctx->nout);

        if (rc == NGX_ERROR) {
            PyErr_SetString(PyExc_OSError, "write(): client disconnected");
            return NULL;
        }
    }

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_wsgi_client_connected_call(PyObject *self, PyObject *const *args,
    size_t nargsf, PyObject *kwnames)
{
    struct pollfd         pfd;
    ngx_http_wsgi_ctx_t  *ctx;

    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "client_connected() takes no "
                        "arguments");
        return NULL;
    }

    ctx = ((ngx_http_wsgi_bound_t *) self)->sr->ctx;

    if (ctx == NULL || ctx->client_gone) {
        Py_RETURN_FALSE;
    }

    if (ctx->snap.fd != -1) {
        pfd.fd = ctx->snap.fd;
        pfd.events = POLLIN|POLLRDHUP;
        pfd.revents = 0;

        /* a shut down sending side counts as gone, as for the read event */

        if (poll(&pfd, 1, 0) == 1
            && (pfd.revents & (POLLRDHUP|POLLHUP|POLLERR)))
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                           "wsgi client_connected: client gone");
            Py_RETURN_FALSE;
        }
    }

    Py_RETURN_TRUE;
}


#endif /* !(NGX_HTTP_WSGI_FUZZ) */
