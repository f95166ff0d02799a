
/*
 * nginx mod_wsgi: start_response() and write(), the callables; the status
 * and headers they are given are checked in ngx_http_wsgi_header.c.
 */


#include "ngx_http_wsgi_module.h"
#include <poll.h>


/*
 * ngx.StartResponse: one request's start_response, created by the call
 * step, owned by the context; expires (ctx = NULL) when the request is
 * closed, after which it and its write() raise RuntimeError.  write() and
 * ngx.client_connected reference it and it references nothing: no cycle,
 * no cyclic GC.
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


static PyMemberDef  ngx_http_wsgi_start_response_members[] = {
    { "__vectorcalloffset__", NGX_HTTP_WSGI_T_PYSSIZET,
      offsetof(ngx_http_wsgi_start_response_t, vectorcall),
      NGX_HTTP_WSGI_READONLY, NULL },
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
    { "__vectorcalloffset__", NGX_HTTP_WSGI_T_PYSSIZET,
      offsetof(ngx_http_wsgi_bound_t, vectorcall), NGX_HTTP_WSGI_READONLY,
      NULL },
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

    off_t                    length;
    PyObject                *argv[3], *status, *headers, *exc_info, *block,
                            *exc, *tb;
    PyObject                *name;
    Py_ssize_t               i, k, nargs, nkw;
    ngx_uint_t               nheaders;
    ngx_http_wsgi_ctx_t     *ctx;
    ngx_http_wsgi_header_t  *list;

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

            /* borrowed */
            exc = PyTuple_GET_ITEM(exc_info, 1);
            tb = PyTuple_GET_ITEM(exc_info, 2);

            if (!PyExceptionInstance_Check(exc)) {
                PyErr_Format(PyExc_TypeError, "start_response() argument 3 "
                             "must hold an exception, not %.200s",
                             Py_TYPE(exc)->tp_name);
                return NULL;
            }

            if (tb != Py_None && PyException_SetTraceback(exc, tb) != 0) {
                return NULL;
            }

            ngx_http_wsgi_exception_set(Py_NewRef(exc));
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

    block = ngx_http_wsgi_headers_parse(headers, &list, &nheaders, &length);
    if (block == NULL) {
        return NULL;
    }

    if (ctx->started) {
        /* exc_info: an error page replaces what write() held back */
        ngx_http_wsgi_spool_discard(ctx);
    }

    Py_XSETREF(ctx->headers, block);
    ctx->header = list;
    ctx->nheaders = nheaders;
    ctx->length = length;
    ctx->started = 1;

    return ngx_http_wsgi_bound_new(ngx_http_wsgi_state()->write_type, self,
                                   ngx_http_wsgi_write_call);
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
