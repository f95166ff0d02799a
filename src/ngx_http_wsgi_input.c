
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
    off_t                    left;       /* bytes not yet read */
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
    Py_ssize_t limit);


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

    in->ctx = ctx;
    in->seg = 0;
    in->off = 0;
    in->left = ctx->snap.body_size;
    in->buf = NULL;
    in->buf_seg = 0;
    in->buf_off = 0;
    in->buf_len = 0;

    return (PyObject *) in;
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


/*
 * Points *data at the contiguous bytes at the current position: in place
 * for a memory segment, through the read-ahead buffer for the temp file.
 * Returns their number, 0 at the end of the body, -1 with OSError set.
 */

static ssize_t
ngx_http_wsgi_input_peek(ngx_http_wsgi_input_t *in, u_char **data)
{
    ssize_t                n;
    size_t                 size;
    ngx_http_wsgi_body_t  *seg;

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


static void
ngx_http_wsgi_input_consume(ngx_http_wsgi_input_t *in, size_t n)
{
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
        if (_PyBytes_Resize(&bytes, p - (u_char *) PyBytes_AS_STRING(bytes))
            != 0)
        {
            return NULL;
        }
    }

    return bytes;
}


/* a line of at most limit bytes (no limit when negative) */

static PyObject *
ngx_http_wsgi_input_line(ngx_http_wsgi_input_t *in, Py_ssize_t limit)
{
    u_char      *data, *nl, *line, *p;
    size_t       len, alloc;
    ssize_t      n;
    PyObject    *bytes;

    line = NULL;
    len = 0;
    alloc = 0;

    if (limit < 0 || limit > in->left) {
        limit = (Py_ssize_t) in->left;
    }

    while ((Py_ssize_t) len < limit) {
        n = ngx_http_wsgi_input_peek(in, &data);

        if (n < 0) {
            PyMem_Free(line);
            return NULL;
        }

        if (n == 0) {
            break;
        }

        n = ngx_min(n, limit - (Py_ssize_t) len);

        nl = ngx_strlchr(data, data + n, LF);
        if (nl) {
            n = nl + 1 - data;
        }

        if (len == 0 && nl) {
            /* the common case: the whole line is contiguous */
            bytes = PyBytes_FromStringAndSize((char *) data, n);
            if (bytes) {
                ngx_http_wsgi_input_consume(in, n);
            }

            return bytes;
        }

        if (len + n > alloc) {
            alloc = ngx_max(2 * alloc, len + n);

            p = PyMem_Realloc(line, alloc);
            if (p == NULL) {
                PyMem_Free(line);
                return PyErr_NoMemory();
            }

            line = p;
        }

        ngx_memcpy(line + len, data, n);
        len += n;

        ngx_http_wsgi_input_consume(in, n);

        if (nl) {
            break;
        }
    }

    bytes = PyBytes_FromStringAndSize((char *) line, len);

    PyMem_Free(line);

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

    return ngx_http_wsgi_input_line(in, size);
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
        line = ngx_http_wsgi_input_line(in, -1);
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

    line = ngx_http_wsgi_input_line(in, -1);

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
