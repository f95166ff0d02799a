
/*
 * nginx mod_wsgi: start_response() and write().
 */


#include "ngx_http_wsgi_module.h"


/*
 * ngx.StartResponse: the start_response callable of one request.
 * Created by the call step, owned by the context; the application may keep
 * references.  Expires (ctx = NULL) when its request is closed: afterwards
 * calling it or its write() raises RuntimeError.
 */

typedef struct {
    PyObject_HEAD
    ngx_http_wsgi_ctx_t     *ctx;
    PyObject                *write;      /* bound write(), created once */
} ngx_http_wsgi_start_response_t;


static PyObject *ngx_http_wsgi_start_response_call(PyObject *self,
    PyObject *args, PyObject *kwargs);
static PyObject *ngx_http_wsgi_start_response_write(PyObject *self,
    PyObject *data);
static PyObject *ngx_http_wsgi_start_response_client_connected(
    PyObject *self, PyObject *unused);
static int ngx_http_wsgi_start_response_traverse(PyObject *self,
    visitproc visit, void *arg);
static int ngx_http_wsgi_start_response_clear(PyObject *self);
static void ngx_http_wsgi_start_response_dealloc(PyObject *self);
static ngx_int_t ngx_http_wsgi_status_parse(ngx_http_wsgi_ctx_t *ctx,
    PyObject *status);
static PyObject *ngx_http_wsgi_headers_parse(PyObject *headers,
    ngx_uint_t *nheaders, off_t *length);
static ngx_int_t ngx_http_wsgi_header_name_valid(u_char *p, size_t len);


static const char  *ngx_http_wsgi_hop_by_hop[] = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    NULL
};


static PyMethodDef  ngx_http_wsgi_start_response_methods[] = {
    { "write", (PyCFunction) ngx_http_wsgi_start_response_write, METH_O,
      "write(data): the PEP 3333 write() callable" },
    { "client_connected", ngx_http_wsgi_start_response_client_connected,
      METH_NOARGS,
      "client_connected(): False once the client has gone away" },
    { NULL, NULL, 0, NULL }
};


static PyType_Slot  ngx_http_wsgi_start_response_slots[] = {
    { Py_tp_call, ngx_http_wsgi_start_response_call },
    { Py_tp_methods, ngx_http_wsgi_start_response_methods },
    { Py_tp_traverse, ngx_http_wsgi_start_response_traverse },
    { Py_tp_clear, ngx_http_wsgi_start_response_clear },
    { Py_tp_dealloc, ngx_http_wsgi_start_response_dealloc },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_start_response_spec = {
    "ngx.StartResponse",
    sizeof(ngx_http_wsgi_start_response_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE
    | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_start_response_slots
};


PyObject *
ngx_http_wsgi_start_response_new(ngx_http_wsgi_ctx_t *ctx)
{
    PyTypeObject                    *type;
    ngx_http_wsgi_start_response_t  *sr;

    type = (PyTypeObject *) ngx_http_wsgi_state()->start_response_type;

    sr = PyObject_GC_New(ngx_http_wsgi_start_response_t, type);
    if (sr == NULL) {
        return NULL;
    }

    sr->ctx = ctx;
    sr->write = NULL;

    PyObject_GC_Track(sr);

    sr->write = PyCFunction_NewEx(&ngx_http_wsgi_start_response_methods[0],
                                  (PyObject *) sr, NULL);
    if (sr->write == NULL) {
        Py_DECREF(sr);
        return NULL;
    }

    return (PyObject *) sr;
}


/* environ["ngx.client_connected"] */

PyObject *
ngx_http_wsgi_start_response_connected(PyObject *sr)
{
    return PyCFunction_NewEx(&ngx_http_wsgi_start_response_methods[1], sr,
                             NULL);
}


void
ngx_http_wsgi_start_response_expire(PyObject *self)
{
    ((ngx_http_wsgi_start_response_t *) self)->ctx = NULL;
}


static PyObject *
ngx_http_wsgi_start_response_call(PyObject *self, PyObject *args,
    PyObject *kwargs)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    off_t                 length;
    PyObject             *status, *headers, *exc_info, *block;
    ngx_uint_t            nheaders;
    ngx_http_wsgi_ctx_t  *ctx;

    static char  *kwlist[] = { "status", "response_headers", "exc_info",
                               NULL };

    exc_info = Py_None;
    nheaders = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response",
                                     kwlist, &status, &headers, &exc_info))
    {
        return NULL;
    }

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
    ctx->nheaders = nheaders;
    ctx->length = length;
    ctx->started = 1;

    return Py_NewRef(sr->write);
}


static ngx_int_t
ngx_http_wsgi_status_parse(ngx_http_wsgi_ctx_t *ctx, PyObject *status)
{
    u_char      *p;
    size_t       i, len;
    PyObject    *bytes;
    ngx_uint_t   code;

    bytes = PyUnicode_AsLatin1String(status);
    if (bytes == NULL) {
        PyErr_SetString(PyExc_ValueError, "start_response() status must be "
                        "latin-1 text");
        return NGX_ERROR;
    }

    p = (u_char *) PyBytes_AS_STRING(bytes);
    len = PyBytes_GET_SIZE(bytes);

    if (len < 4
        || p[0] < '1' || p[0] > '9'
        || !ngx_http_wsgi_isdigit(p[1]) || !ngx_http_wsgi_isdigit(p[2])
        || p[3] != ' ')
    {
        PyErr_Format(PyExc_ValueError, "start_response() status %R is not "
                     "\"NNN reason\"", status);
        Py_DECREF(bytes);
        return NGX_ERROR;
    }

    for (i = 4; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            PyErr_Format(PyExc_ValueError, "start_response() status %R "
                         "contains a control character", status);
            Py_DECREF(bytes);
            return NGX_ERROR;
        }
    }

    code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');

    if (code < 200) {
        PyErr_Format(PyExc_ValueError, "start_response() status %R: "
                     "informational responses are not supported", status);
        Py_DECREF(bytes);
        return NGX_ERROR;
    }

    Py_XSETREF(ctx->status, bytes);
    ctx->status_code = code;

    return NGX_OK;
}


/*
 * Validates the headers and packs them for the nginx side into one bytes
 * object, "name\0value\0" for each header, latin-1 as PEP 3333 requires.
 */

static PyObject *
ngx_http_wsgi_headers_parse(PyObject *headers, ngx_uint_t *nheaders,
    off_t *length)
{
    u_char       *p, *d;
    size_t        size, nlen, vlen;
    PyObject     *item, *name, *value, *block;
    PyObject    **enc;
    ngx_int_t     n;
    Py_ssize_t    i, count;
    ngx_uint_t    k;

    block = NULL;
    *length = -1;

    count = PyList_GET_SIZE(headers);

    enc = PyMem_Calloc(count ? 2 * count : 1, sizeof(PyObject *));
    if (enc == NULL) {
        return PyErr_NoMemory();
    }

    size = 0;

    for (i = 0; i < count; i++) {
        /* borrowed */
        item = PyList_GET_ITEM(headers, i);

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "start_response() header %zd "
                         "must be a (name, value) tuple, not %.200s",
                         i, Py_TYPE(item)->tp_name);
            goto failed;
        }

        name = PyTuple_GET_ITEM(item, 0);
        value = PyTuple_GET_ITEM(item, 1);

        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "start_response() header name "
                         "must be str, not %.200s", Py_TYPE(name)->tp_name);
            goto failed;
        }

        if (!PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "start_response() value of header "
                         "%R must be str, not %.200s", name,
                         Py_TYPE(value)->tp_name);
            goto failed;
        }

        enc[2 * i] = PyUnicode_AsLatin1String(name);
        if (enc[2 * i] == NULL) {
            goto failed;
        }

        enc[2 * i + 1] = PyUnicode_AsLatin1String(value);
        if (enc[2 * i + 1] == NULL) {
            PyErr_Format(PyExc_ValueError, "start_response() value of header "
                         "%R is not latin-1 text", name);
            goto failed;
        }

        p = (u_char *) PyBytes_AS_STRING(enc[2 * i]);
        nlen = PyBytes_GET_SIZE(enc[2 * i]);

        if (!ngx_http_wsgi_header_name_valid(p, nlen)) {
            PyErr_Format(PyExc_ValueError, "start_response() header name %R "
                         "is not a valid HTTP token", name);
            goto failed;
        }

        for (k = 0; ngx_http_wsgi_hop_by_hop[k]; k++) {
            if (nlen == ngx_strlen(ngx_http_wsgi_hop_by_hop[k])
                && ngx_strncasecmp(p, (u_char *) ngx_http_wsgi_hop_by_hop[k],
                                   nlen)
                   == 0)
            {
                PyErr_Format(PyExc_ValueError, "start_response() header %R "
                             "is hop-by-hop and not allowed in a WSGI "
                             "response", name);
                goto failed;
            }
        }

        d = (u_char *) PyBytes_AS_STRING(enc[2 * i + 1]);
        vlen = PyBytes_GET_SIZE(enc[2 * i + 1]);

        for (k = 0; k < vlen; k++) {
            if (d[k] == CR || d[k] == LF || d[k] == '\0') {
                PyErr_Format(PyExc_ValueError, "start_response() value of "
                             "header %R contains CR, LF or NUL", name);
                goto failed;
            }
        }

        if (nlen == sizeof("Content-Length") - 1
            && ngx_strncasecmp(p, (u_char *) "Content-Length", nlen) == 0)
        {
            n = ngx_atoof(d, vlen);

            if (n == NGX_ERROR || *length != -1) {
                PyErr_Format(PyExc_ValueError, "start_response() has an "
                             "invalid or repeated Content-Length %R", value);
                goto failed;
            }

            *length = n;
        }

        size += nlen + vlen + 2;
    }

    block = PyBytes_FromStringAndSize(NULL, size);
    if (block == NULL) {
        goto failed;
    }

    p = (u_char *) PyBytes_AS_STRING(block);

    for (i = 0; i < 2 * count; i++) {
        p = ngx_cpymem(p, PyBytes_AS_STRING(enc[i]),
                       PyBytes_GET_SIZE(enc[i]));
        *p++ = '\0';
    }

    *nheaders = count;

failed:

    for (i = 0; i < 2 * count; i++) {
        Py_XDECREF(enc[i]);
    }

    PyMem_Free(enc);

    return block;
}


static ngx_int_t
ngx_http_wsgi_header_name_valid(u_char *p, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (ngx_http_wsgi_isalnum(c)) {
            continue;
        }

        if (ngx_strchr("!#$%&'*+-.^_`|~", c) == NULL || c == '\0') {
            return 0;
        }
    }

    return 1;
}


static PyObject *
ngx_http_wsgi_start_response_write(PyObject *self, PyObject *data)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    ngx_int_t             rc;
    ngx_http_wsgi_ctx_t  *ctx;

    ctx = sr->ctx;

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

    if (ctx->done) {
        /* past the Content-Length: dropped, as the iterable's would be */
        Py_RETURN_NONE;
    }

    if (ctx->client_gone) {
        PyErr_SetString(PyExc_OSError, "write(): client disconnected");
        return NULL;
    }

    if (ctx->flushing_py) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called while another write() waits");
        return NULL;
    }

    if (ngx_http_wsgi_step_chunk(ctx, data, "write() argument") != NGX_OK) {
        /* cannot happen for bytes-like data after the checks above */
        PyErr_SetString(PyExc_RuntimeError, "write() failed");
        return NULL;
    }

    if (ctx->thread_pool && ctx->nout) {

        /* on a pool thread: the data goes out now, and write() waits */

        ctx->flushing_py = 1;
        rc = ngx_http_wsgi_thread_wait(ctx, 0);
        ctx->flushing_py = 0;

        if (rc != NGX_OK) {
            PyErr_SetString(PyExc_OSError, "write(): client disconnected");
            return NULL;
        }
    }

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_wsgi_start_response_client_connected(PyObject *self,
    PyObject *unused)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    return PyBool_FromLong(sr->ctx != NULL && !sr->ctx->client_gone);
}


static int
ngx_http_wsgi_start_response_traverse(PyObject *self, visitproc visit,
    void *arg)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    Py_VISIT(sr->write);
    Py_VISIT(Py_TYPE(self));

    return 0;
}


static int
ngx_http_wsgi_start_response_clear(PyObject *self)
{
    ngx_http_wsgi_start_response_t *sr = (ngx_http_wsgi_start_response_t *)
                                         self;

    Py_CLEAR(sr->write);

    return 0;
}


static void
ngx_http_wsgi_start_response_dealloc(PyObject *self)
{
    PyTypeObject  *type;

    type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void) ngx_http_wsgi_start_response_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}
