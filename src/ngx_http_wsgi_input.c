
/*
 * nginx mod_wsgi: wsgi.input.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_INPUT_BUF  16384


/*
 * ngx.Input: the request body as nginx read it, memory buffers and ranges
 * of its temp file, read in place (file data through a small read-ahead
 * buffer, never the whole body at once).  Created by the call step, owned
 * by the context; expires (ctx = NULL) when the request is closed, after
 * which every method raises RuntimeError.
 */

typedef struct {
    PyObject_HEAD
    ngx_http_wsgi_ctx_t     *ctx;
    ngx_uint_t               seg;        /* current body segment */
    off_t                    off;        /* offset in it */
    off_t                    left;       /* bytes not yet read, -1: stream */
    u_char                  *buf;        /* read-ahead of a file segment */
    ngx_uint_t               buf_seg;
    off_t                    buf_off;
    size_t                   buf_len;
} ngx_http_wsgi_input_t;


static PyObject *ngx_http_wsgi_input_read(PyObject *self, PyObject *args);
static PyObject *ngx_http_wsgi_input_readline(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_wsgi_input_readlines(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_wsgi_input_iternext(PyObject *self);
static void ngx_http_wsgi_input_dealloc(PyObject *self);
static ngx_int_t ngx_http_wsgi_input_check(ngx_http_wsgi_input_t *in);
static ngx_int_t ngx_http_wsgi_input_size(PyObject *args, const char *name,
    Py_ssize_t *size);
static ssize_t ngx_http_wsgi_input_peek(ngx_http_wsgi_input_t *in,
    u_char **data);
static void ngx_http_wsgi_input_consume(ngx_http_wsgi_input_t *in,
    size_t n);
static PyObject *ngx_http_wsgi_input_line(ngx_http_wsgi_input_t *in,
    Py_ssize_t limit, ngx_uint_t line);
static ssize_t ngx_http_wsgi_input_stream(ngx_http_wsgi_input_t *in,
    u_char **data);


static PyMethodDef  ngx_http_wsgi_input_methods[] = {
    { "read", ngx_http_wsgi_input_read, METH_VARARGS,
      "read(size=-1)" },
    { "readline", ngx_http_wsgi_input_readline, METH_VARARGS,
      "readline(size=-1)" },
    { "readlines", ngx_http_wsgi_input_readlines, METH_VARARGS,
      "readlines(hint=-1)" },
    { NULL, NULL, 0, NULL }
};


static PyType_Slot  ngx_http_wsgi_input_slots[] = {
    { Py_tp_methods, ngx_http_wsgi_input_methods },
    { Py_tp_iter, PyObject_SelfIter },
    { Py_tp_iternext, ngx_http_wsgi_input_iternext },
    { Py_tp_dealloc, ngx_http_wsgi_input_dealloc },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_input_spec = {
    "ngx.Input",
    sizeof(ngx_http_wsgi_input_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE
    | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_input_slots
};


PyObject *
ngx_http_wsgi_input_new(ngx_http_wsgi_ctx_t *ctx)
{
    PyTypeObject           *type;
    ngx_http_wsgi_input_t  *in;

    type = (PyTypeObject *) ngx_http_wsgi_state()->input_type;

    in = PyObject_New(ngx_http_wsgi_input_t, type);
    if (in == NULL) {
        return NULL;
    }

    in->buf = NULL;

    ngx_http_wsgi_input_rebind((PyObject *) in, ctx);

    return (PyObject *) in;
}


/* also: an expired wsgi.input nobody else holds serves another request */

void
ngx_http_wsgi_input_rebind(PyObject *self, ngx_http_wsgi_ctx_t *ctx)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    PyMem_Free(in->buf);

    in->ctx = ctx;
    in->seg = 0;
    in->off = 0;
    in->left = ctx->streaming_input ? -1 : ctx->snap.body_size;
    in->buf = NULL;
    in->buf_seg = 0;
    in->buf_off = 0;
    in->buf_len = 0;
}


void
ngx_http_wsgi_input_expire(PyObject *self)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    in->ctx = NULL;

    PyMem_Free(in->buf);
    in->buf = NULL;
    in->buf_len = 0;
}


static ngx_int_t
ngx_http_wsgi_input_check(ngx_http_wsgi_input_t *in)
{
    if (in->ctx == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "wsgi.input used after its request ended");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the optional size argument: an int or None, -1 when absent */

static ngx_int_t
ngx_http_wsgi_input_size(PyObject *args, const char *name, Py_ssize_t *size)
{
    PyObject  *arg;

    arg = Py_None;

    if (!PyArg_UnpackTuple(args, name, 0, 1, &arg)) {
        return NGX_ERROR;
    }

    if (arg == Py_None) {
        *size = -1;
        return NGX_OK;
    }

    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() argument must be int or None, "
                     "not %.200s", name, Py_TYPE(arg)->tp_name);
        return NGX_ERROR;
    }

    *size = PyLong_AsSsize_t(arg);

    if (*size == -1 && PyErr_Occurred()) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the contiguous bytes at the position; 0 at the end, -1 with OSError */

static ssize_t
ngx_http_wsgi_input_peek(ngx_http_wsgi_input_t *in, u_char **data)
{
    ssize_t                n;
    size_t                 size;
    ngx_http_wsgi_body_t  *seg;

    if (in->left == -1) {
        return ngx_http_wsgi_input_stream(in, data);
    }

    for ( ;; ) {
        if (in->seg >= in->ctx->snap.nbody) {
            return 0;
        }

        seg = &in->ctx->snap.body[in->seg];

        if (in->off < seg->size) {
            break;
        }

        in->seg++;
        in->off = 0;
    }

    if (seg->pos) {
        *data = seg->pos + in->off;
        return (ssize_t) (seg->size - in->off);
    }

    if (in->buf_len == 0 || in->buf_seg != in->seg
        || in->off < in->buf_off
        || in->off >= in->buf_off + (off_t) in->buf_len)
    {
        if (in->buf == NULL) {
            in->buf = PyMem_Malloc(NGX_HTTP_WSGI_INPUT_BUF);
            if (in->buf == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }

        size = (size_t) ngx_min(seg->size - in->off,
                                NGX_HTTP_WSGI_INPUT_BUF);

        n = pread(seg->fd, in->buf, size, seg->offset + in->off);

        if (n <= 0) {
            in->buf_len = 0;

            if (n == 0) {
                PyErr_SetString(PyExc_OSError, "wsgi.input: request body "
                                "temp file is shorter than expected");

            } else {
                PyErr_SetFromErrno(PyExc_OSError);
            }

            return -1;
        }

        in->buf_seg = in->seg;
        in->buf_off = in->off;
        in->buf_len = n;
    }

    *data = in->buf + (in->off - in->buf_off);

    return (ssize_t) (in->buf_off + (off_t) in->buf_len - in->off);
}


/* wsgi_request_buffering off: waits without the GIL for the nginx side */

static ssize_t
ngx_http_wsgi_input_stream(ngx_http_wsgi_input_t *in, u_char **data)
{
    ngx_int_t             rc;
    ngx_http_wsgi_in_t   *seg;
    ngx_http_wsgi_ctx_t  *ctx;

    ctx = in->ctx;

    for ( ;; ) {

        /*
         * Inline, nginx reads the body on the event loop's thread, the
         * request's; on a pool, other threads may wait for it in turns
         * while the request's thread is in the application.
         */

        if (ctx->step_ts != PyThreadState_Get()
            && (ctx->thread_pool == NULL
                || ctx->inside == NGX_HTTP_WSGI_INSIDE_STEP))
        {
            PyErr_SetString(PyExc_RuntimeError, "wsgi.input read from a "
                            "thread other than the request's");
            return -1;
        }

        if (ctx->py_waiting) {
            ngx_http_wsgi_thread_turn(ctx);
            continue;
        }

        seg = ctx->in;

        if (seg) {
            if (seg->pos < seg->size) {
                *data = seg->data + seg->pos;
                return (ssize_t) (seg->size - seg->pos);
            }

            ctx->in = seg->next;

            if (ctx->in == NULL) {
                ctx->in_last = &ctx->in;
            }

            ngx_free(seg);
            continue;
        }

        if (ctx->in_state == NGX_OK) {
            return 0;
        }

        if (ctx->in_state == NGX_AGAIN) {

            if (ctx->thread_pool) {
                rc = ngx_http_wsgi_thread_wait(ctx, 1);

            } else {
                Py_BEGIN_ALLOW_THREADS
                rc = ngx_http_wsgi_body_pull(ctx);
                Py_END_ALLOW_THREADS
            }

            if (rc != NGX_ERROR || ctx->in != NULL) {
                continue;
            }
        }

        PyErr_SetString(PyExc_OSError, "wsgi.input: the request body could "
                        "not be read, the client may have gone away");
        return -1;
    }
}


static void
ngx_http_wsgi_input_consume(ngx_http_wsgi_input_t *in, size_t n)
{
    if (in->left == -1) {
        in->ctx->in->pos += n;
        return;
    }

    in->off += n;
    in->left -= n;
}


static PyObject *
ngx_http_wsgi_input_read(PyObject *self, PyObject *args)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    u_char      *p, *data;
    ssize_t      n;
    PyObject    *bytes;
    Py_ssize_t   size;

    if (ngx_http_wsgi_input_check(in) != NGX_OK
        || ngx_http_wsgi_input_size(args, "read", &size) != NGX_OK)
    {
        return NULL;
    }

    if (in->left == -1) {
        /* a stream: as many bytes as asked for, or up to the end */
        return ngx_http_wsgi_input_line(in, size < 0 ? -1 : size, 0);
    }

    if (size < 0 || size > in->left) {
        size = (Py_ssize_t) in->left;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, in->ctx->log, 0,
                   "wsgi input read: %z", size);

    bytes = PyBytes_FromStringAndSize(NULL, size);
    if (bytes == NULL) {
        return NULL;
    }

    p = (u_char *) PyBytes_AS_STRING(bytes);

    while (size) {
        n = ngx_http_wsgi_input_peek(in, &data);

        if (n < 0) {
            Py_DECREF(bytes);
            return NULL;
        }

        if (n == 0) {
            /* the snapshot's size and segments disagree: cannot happen */
            break;
        }

        n = ngx_min(n, size);

        p = ngx_cpymem(p, data, n);
        ngx_http_wsgi_input_consume(in, n);
        size -= n;
    }

    if (size) {
        /* what was read, in a bytes of its size */
        Py_SETREF(bytes, PyBytes_FromStringAndSize(PyBytes_AS_STRING(bytes),
                             p - (u_char *) PyBytes_AS_STRING(bytes)));
    }

    return bytes;
}


/* a line (line unset: just bytes) of at most limit bytes; negative: none */

static PyObject *
ngx_http_wsgi_input_line(ngx_http_wsgi_input_t *in, Py_ssize_t limit,
    ngx_uint_t line)
{
    u_char      *data, *nl, *buf, *p;
    size_t       len, alloc;
    ssize_t      n;
    PyObject    *bytes;

    buf = NULL;
    len = 0;
    alloc = 0;

    if (in->left != -1 && (limit < 0 || limit > in->left)) {
        limit = (Py_ssize_t) in->left;
    }

    while (limit < 0 || (Py_ssize_t) len < limit) {
        n = ngx_http_wsgi_input_peek(in, &data);

        if (n < 0) {
            PyMem_Free(buf);
            return NULL;
        }

        if (n == 0) {
            break;
        }

        if (limit >= 0) {
            n = ngx_min(n, limit - (Py_ssize_t) len);
        }

        nl = line ? ngx_strlchr(data, data + n, LF) : NULL;
        if (nl) {
            n = nl + 1 - data;
        }

        if (len == 0 && (nl || (Py_ssize_t) n == limit)) {
            /* the common case: all of it is contiguous */
            bytes = PyBytes_FromStringAndSize((char *) data, n);
            if (bytes) {
                ngx_http_wsgi_input_consume(in, n);
            }

            return bytes;
        }

        if (len + n > alloc) {
            alloc = ngx_max(2 * alloc, len + n);

            p = PyMem_Realloc(buf, alloc);
            if (p == NULL) {
                PyMem_Free(buf);
                return PyErr_NoMemory();
            }

            buf = p;
        }

        ngx_memcpy(buf + len, data, n);
        len += n;

        ngx_http_wsgi_input_consume(in, n);

        if (nl) {
            break;
        }
    }

    bytes = PyBytes_FromStringAndSize((char *) buf, len);

    PyMem_Free(buf);

    return bytes;
}


static PyObject *
ngx_http_wsgi_input_readline(PyObject *self, PyObject *args)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    Py_ssize_t  size;

    if (ngx_http_wsgi_input_check(in) != NGX_OK
        || ngx_http_wsgi_input_size(args, "readline", &size) != NGX_OK)
    {
        return NULL;
    }

    return ngx_http_wsgi_input_line(in, size, 1);
}


static PyObject *
ngx_http_wsgi_input_readlines(PyObject *self, PyObject *args)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    size_t       total;
    PyObject    *list, *line;
    Py_ssize_t   hint;

    if (ngx_http_wsgi_input_check(in) != NGX_OK
        || ngx_http_wsgi_input_size(args, "readlines", &hint) != NGX_OK)
    {
        return NULL;
    }

    list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }

    total = 0;

    for ( ;; ) {
        line = ngx_http_wsgi_input_line(in, -1, 1);
        if (line == NULL) {
            Py_DECREF(list);
            return NULL;
        }

        if (PyBytes_GET_SIZE(line) == 0) {
            Py_DECREF(line);
            break;
        }

        total += PyBytes_GET_SIZE(line);

        if (PyList_Append(list, line) != 0) {
            Py_DECREF(line);
            Py_DECREF(list);
            return NULL;
        }

        Py_DECREF(line);

        if (hint > 0 && total >= (size_t) hint) {
            break;
        }
    }

    return list;
}


static PyObject *
ngx_http_wsgi_input_iternext(PyObject *self)
{
    ngx_http_wsgi_input_t *in = (ngx_http_wsgi_input_t *) self;

    PyObject  *line;

    if (ngx_http_wsgi_input_check(in) != NGX_OK) {
        return NULL;
    }

    line = ngx_http_wsgi_input_line(in, -1, 1);

    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        /* StopIteration */
        Py_DECREF(line);
        return NULL;
    }

    return line;
}


static void
ngx_http_wsgi_input_dealloc(PyObject *self)
{
    PyTypeObject  *type;

    type = Py_TYPE(self);

    PyMem_Free(((ngx_http_wsgi_input_t *) self)->buf);

    type->tp_free(self);
    Py_DECREF(type);
}
