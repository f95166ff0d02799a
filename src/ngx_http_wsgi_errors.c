
/*
 * nginx mod_wsgi: wsgi.errors, sys.stdout and sys.stderr, and tracebacks,
 * all written to nginx's error log one line per entry, prefixed "wsgi: ",
 * control characters escaped.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_LINE_MAX  4096


/* a line past NGX_HTTP_WSGI_LINE_MAX: its start logged, the rest skipped */

typedef struct {
    u_char                  *line;       /* PyMem_Malloc()ed */
    size_t                   len;
    ngx_log_t               *log;        /* the partial line's, or NULL */
    ngx_uint_t               level;
    unsigned                 skip:1;
} ngx_http_wsgi_lines_t;


/*
 * ngx.Errors: wsgi.errors, a text stream into the error log.  Created by
 * the call step with the request's log; expires when the request is
 * closed (writes then raise RuntimeError).  A partial line waits for its
 * newline, for flush() or for the end of the request.
 */

typedef struct {
    PyObject_HEAD
    ngx_http_wsgi_lines_t    lines;
    ngx_log_t               *log;
    unsigned                 expired:1;
} ngx_http_wsgi_errors_t;


/*
 * ngx.LogStream: the binary stream under sys.stdout and sys.stderr, for
 * the interpreter's life.  A line goes to the log of the request whose
 * step writes it, else the cycle's; a partial line goes on flush(), at the
 * end of the request or at exit.
 */

typedef struct {
    PyObject_HEAD
    ngx_http_wsgi_lines_t    lines;
    const char              *name;
} ngx_http_wsgi_log_stream_t;


ngx_http_wsgi_tls ngx_log_t  *ngx_http_wsgi_step_log;


static PyObject *ngx_http_wsgi_errors_write(PyObject *self, PyObject *arg);
static PyObject *ngx_http_wsgi_errors_writelines(PyObject *self,
    PyObject *arg);
static PyObject *ngx_http_wsgi_errors_flush(PyObject *self,
    PyObject *unused);
static PyObject *ngx_http_wsgi_errors_false(PyObject *self,
    PyObject *unused);
static PyObject *ngx_http_wsgi_errors_true(PyObject *self, PyObject *unused);
static PyObject *ngx_http_wsgi_errors_get_encoding(PyObject *self,
    void *closure);
static PyObject *ngx_http_wsgi_errors_get_closed(PyObject *self,
    void *closure);
static void ngx_http_wsgi_errors_dealloc(PyObject *self);
static ngx_int_t ngx_http_wsgi_errors_check(ngx_http_wsgi_errors_t *err);
static PyObject *ngx_http_wsgi_log_stream_write(PyObject *self,
    PyObject *arg);
static PyObject *ngx_http_wsgi_log_stream_flush(PyObject *self,
    PyObject *unused);
static PyObject *ngx_http_wsgi_log_stream_fileno(PyObject *self,
    PyObject *unused);
static PyObject *ngx_http_wsgi_log_stream_get_closed(PyObject *self,
    void *closure);
static PyObject *ngx_http_wsgi_log_stream_get_name(PyObject *self,
    void *closure);
static PyObject *ngx_http_wsgi_log_stream_get_mode(PyObject *self,
    void *closure);
static void ngx_http_wsgi_log_stream_dealloc(PyObject *self);
static ngx_int_t ngx_http_wsgi_lines_write(ngx_http_wsgi_lines_t *l,
    ngx_log_t *log, u_char *p, size_t len);
static void ngx_http_wsgi_lines_flush(ngx_http_wsgi_lines_t *l);
static void ngx_http_wsgi_log_text(ngx_log_t *log, ngx_uint_t level, u_char *p,
    size_t len);


static PyMethodDef  ngx_http_wsgi_errors_methods[] = {
    { "write", ngx_http_wsgi_errors_write, METH_O,
      "write(str): log complete lines" },
    { "writelines", ngx_http_wsgi_errors_writelines, METH_O,
      "writelines(lines)" },
    { "flush", ngx_http_wsgi_errors_flush, METH_NOARGS,
      "flush(): log a pending partial line" },
    { "isatty", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "readable", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "seekable", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "writable", ngx_http_wsgi_errors_true, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL }
};


static PyGetSetDef  ngx_http_wsgi_errors_getset[] = {
    { "encoding", ngx_http_wsgi_errors_get_encoding, NULL, NULL, NULL },
    { "closed", ngx_http_wsgi_errors_get_closed, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL }
};


static PyType_Slot  ngx_http_wsgi_errors_slots[] = {
    { Py_tp_methods, ngx_http_wsgi_errors_methods },
    { Py_tp_getset, ngx_http_wsgi_errors_getset },
    { Py_tp_dealloc, ngx_http_wsgi_errors_dealloc },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_errors_spec = {
    "ngx.Errors",
    sizeof(ngx_http_wsgi_errors_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE
    | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_errors_slots
};


static PyMethodDef  ngx_http_wsgi_log_stream_methods[] = {
    { "write", ngx_http_wsgi_log_stream_write, METH_O,
      "write(bytes): log complete lines" },
    { "flush", ngx_http_wsgi_log_stream_flush, METH_NOARGS,
      "flush(): log a pending partial line" },
    { "close", ngx_http_wsgi_log_stream_flush, METH_NOARGS,
      "close(): as flush(); the stream stays open" },
    { "fileno", ngx_http_wsgi_log_stream_fileno, METH_NOARGS,
      "fileno(): raises io.UnsupportedOperation" },
    { "isatty", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "readable", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "seekable", ngx_http_wsgi_errors_false, METH_NOARGS, NULL },
    { "writable", ngx_http_wsgi_errors_true, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL }
};


static PyGetSetDef  ngx_http_wsgi_log_stream_getset[] = {
    { "closed", ngx_http_wsgi_log_stream_get_closed, NULL, NULL, NULL },
    { "name", ngx_http_wsgi_log_stream_get_name, NULL, NULL, NULL },
    { "mode", ngx_http_wsgi_log_stream_get_mode, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL }
};


static PyType_Slot  ngx_http_wsgi_log_stream_slots[] = {
    { Py_tp_methods, ngx_http_wsgi_log_stream_methods },
    { Py_tp_getset, ngx_http_wsgi_log_stream_getset },
    { Py_tp_dealloc, ngx_http_wsgi_log_stream_dealloc },
    { Py_tp_doc, "the binary stream of sys.stdout and sys.stderr: nginx's "
                 "error log" },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_log_stream_spec = {
    "ngx.LogStream",
    sizeof(ngx_http_wsgi_log_stream_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE
    | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ngx_http_wsgi_log_stream_slots
};


PyObject *
ngx_http_wsgi_errors_new(ngx_log_t *log, ngx_uint_t level)
{
    PyTypeObject            *type;
    ngx_http_wsgi_errors_t  *err;

    type = (PyTypeObject *) ngx_http_wsgi_state()->errors_type;

    err = PyObject_New(ngx_http_wsgi_errors_t, type);
    if (err == NULL) {
        return NULL;
    }

    err->log = log;
    err->expired = 0;
    err->lines.line = NULL;
    err->lines.len = 0;
    err->lines.log = NULL;
    err->lines.level = level;
    err->lines.skip = 0;

    return (PyObject *) err;
}


/* an expired wsgi.errors nobody else holds serves another request */

void
ngx_http_wsgi_errors_rebind(PyObject *self, ngx_log_t *log)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    err->log = log;
    err->expired = 0;
    err->lines.len = 0;
    err->lines.skip = 0;
}


void
ngx_http_wsgi_errors_expire(PyObject *self)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    ngx_http_wsgi_lines_flush(&err->lines);

    err->expired = 1;
    err->log = NULL;
}


static ngx_int_t
ngx_http_wsgi_errors_check(ngx_http_wsgi_errors_t *err)
{
    if (err->expired) {
        PyErr_SetString(PyExc_RuntimeError,
                        "wsgi.errors used after its request ended");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static PyObject *
ngx_http_wsgi_errors_write(PyObject *self, PyObject *arg)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    Py_ssize_t   len;
    const char  *s;

    if (ngx_http_wsgi_errors_check(err) != NGX_OK) {
        return NULL;
    }

    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, "
                     "not %.200s", Py_TYPE(arg)->tp_name);
        return NULL;
    }

    s = PyUnicode_AsUTF8AndSize(arg, &len);
    if (s == NULL) {
        return NULL;
    }

    if (ngx_http_wsgi_lines_write(&err->lines, err->log, (u_char *) s,
                                  (size_t) len)
        != NGX_OK)
    {
        return NULL;
    }

    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}


static PyObject *
ngx_http_wsgi_errors_writelines(PyObject *self, PyObject *arg)
{
    PyObject  *iter, *item, *rv;

    iter = PyObject_GetIter(arg);
    if (iter == NULL) {
        return NULL;
    }

    while ((item = PyIter_Next(iter)) != NULL) {
        rv = ngx_http_wsgi_errors_write(self, item);
        Py_DECREF(item);

        if (rv == NULL) {
            Py_DECREF(iter);
            return NULL;
        }

        Py_DECREF(rv);
    }

    Py_DECREF(iter);

    if (PyErr_Occurred()) {
        return NULL;
    }

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_wsgi_errors_flush(PyObject *self, PyObject *unused)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    if (ngx_http_wsgi_errors_check(err) != NGX_OK) {
        return NULL;
    }

    ngx_http_wsgi_lines_flush(&err->lines);

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_wsgi_errors_false(PyObject *self, PyObject *unused)
{
    Py_RETURN_FALSE;
}


static PyObject *
ngx_http_wsgi_errors_true(PyObject *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}


static PyObject *
ngx_http_wsgi_errors_get_encoding(PyObject *self, void *closure)
{
    return PyUnicode_FromString("utf-8");
}


static PyObject *
ngx_http_wsgi_errors_get_closed(PyObject *self, void *closure)
{
    return PyBool_FromLong(((ngx_http_wsgi_errors_t *) self)->expired);
}


static void
ngx_http_wsgi_errors_dealloc(PyObject *self)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    PyTypeObject  *type;

    if (!err->expired) {
        ngx_http_wsgi_lines_flush(&err->lines);
    }

    PyMem_Free(err->lines.line);

    type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}


PyObject *
ngx_http_wsgi_log_stream_new(const char *name, ngx_uint_t level)
{
    PyTypeObject                *type;
    ngx_http_wsgi_log_stream_t  *ls;

    type = (PyTypeObject *) ngx_http_wsgi_state()->log_stream_type;

    ls = PyObject_New(ngx_http_wsgi_log_stream_t, type);
    if (ls == NULL) {
        return NULL;
    }

    ls->name = name;
    ls->lines.line = NULL;
    ls->lines.len = 0;
    ls->lines.log = NULL;
    ls->lines.level = level;
    ls->lines.skip = 0;

    return (PyObject *) ls;
}


static PyObject *
ngx_http_wsgi_log_stream_write(PyObject *self, PyObject *arg)
{
    ngx_http_wsgi_log_stream_t *ls = (ngx_http_wsgi_log_stream_t *) self;

    ngx_int_t   rc;
    Py_buffer   view;

    if (PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "write() argument must be a "
                        "bytes-like object, not str");
        return NULL;
    }

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) {
        return NULL;
    }

    rc = ngx_http_wsgi_lines_write(&ls->lines, ngx_http_wsgi_step_log,
                                   view.buf, view.len);

    PyBuffer_Release(&view);

    if (rc != NGX_OK) {
        return NULL;
    }

    return PyLong_FromSsize_t(view.len);
}


static PyObject *
ngx_http_wsgi_log_stream_flush(PyObject *self, PyObject *unused)
{
    ngx_http_wsgi_lines_flush(&((ngx_http_wsgi_log_stream_t *) self)->lines);

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_wsgi_log_stream_fileno(PyObject *self, PyObject *unused)
{
    PyObject  *io, *exc;

    io = PyImport_ImportModule("io");
    if (io == NULL) {
        return NULL;
    }

    exc = PyObject_GetAttrString(io, "UnsupportedOperation");
    Py_DECREF(io);

    if (exc == NULL) {
        return NULL;
    }

    PyErr_SetString(exc, "fileno(): the error log stream has no descriptor");
    Py_DECREF(exc);

    return NULL;
}


/* the stream never closes: what runs at exit may still print */

static PyObject *
ngx_http_wsgi_log_stream_get_closed(PyObject *self, void *closure)
{
    Py_RETURN_FALSE;
}


static PyObject *
ngx_http_wsgi_log_stream_get_name(PyObject *self, void *closure)
{
    return PyUnicode_FromString(((ngx_http_wsgi_log_stream_t *) self)->name);
}


static PyObject *
ngx_http_wsgi_log_stream_get_mode(PyObject *self, void *closure)
{
    return PyUnicode_FromString("wb");
}


static void
ngx_http_wsgi_log_stream_dealloc(PyObject *self)
{
    ngx_http_wsgi_log_stream_t *ls = (ngx_http_wsgi_log_stream_t *) self;

    PyTypeObject  *type;

    ngx_http_wsgi_lines_flush(&ls->lines);
    PyMem_Free(ls->lines.line);

    type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}


/* a request's partial stdout and stderr lines go while its log is there */

void
ngx_http_wsgi_log_stream_done(ngx_log_t *log)
{
    ngx_uint_t                   i;
    ngx_http_wsgi_state_t       *st;
    ngx_http_wsgi_log_stream_t  *ls;

    st = ngx_http_wsgi_state();

    for (i = 0; i < 2; i++) {
        ls = (ngx_http_wsgi_log_stream_t *) st->stdio[i];

        if (ls && (ls->lines.len || ls->lines.skip)
            && (log == NULL || ls->lines.log == log))
        {
            ngx_http_wsgi_lines_flush(&ls->lines);
        }
    }
}


/* splits text into lines: each complete one is logged, the rest waits */

static ngx_int_t
ngx_http_wsgi_lines_write(ngx_http_wsgi_lines_t *l, ngx_log_t *log,
    u_char *p, size_t len)
{
    u_char  *last, *nl;
    size_t   size, n;

    last = p + len;

    while (p < last) {
        nl = ngx_strlchr(p, last, LF);

        n = (nl ? nl : last) - p;

        if (l->skip) {

            /* the rest of a line that was cut */

            if (nl) {
                l->skip = 0;
                l->log = NULL;
            }

        } else if (l->len || nl == NULL) {

            /* join with (or keep as) the pending partial line */

            if (l->line == NULL) {
                l->line = PyMem_Malloc(NGX_HTTP_WSGI_LINE_MAX);
                if (l->line == NULL) {
                    PyErr_NoMemory();
                    return NGX_ERROR;
                }
            }

            if (l->len == 0) {
                l->log = log;
            }

            size = ngx_min(l->len + n, NGX_HTTP_WSGI_LINE_MAX);

            ngx_memcpy(l->line + l->len, p, size - l->len);
            l->len = size;

            if (nl == NULL && l->len < NGX_HTTP_WSGI_LINE_MAX) {
                break;
            }

            if (nl == NULL) {
                ngx_http_wsgi_log_text(l->log, l->level, l->line, l->len);
                l->len = 0;
                l->skip = 1;

            } else {
                ngx_http_wsgi_lines_flush(l);
            }

        } else {
            ngx_http_wsgi_log_text(log, l->level, p, n);
        }

        p += n + (nl ? 1 : 0);
    }

    return NGX_OK;
}


static void
ngx_http_wsgi_lines_flush(ngx_http_wsgi_lines_t *l)
{
    if (l->len) {
        ngx_http_wsgi_log_text(l->log, l->level, l->line, l->len);
        l->len = 0;
    }

    l->skip = 0;
    l->log = NULL;
}


/*
 * Control characters are escaped as in nginx's access log ("\x0D"): a CR
 * or an ESC would make a log viewer show a line nginx did not write.  A
 * CR ending the line is dropped.  log == NULL: the cycle's.
 */

static void
ngx_http_wsgi_log_text(ngx_log_t *log, ngx_uint_t level, u_char *p,
    size_t len)
{
    u_char  *d, *last;
    u_char   buf[NGX_MAX_ERROR_STR];

    static u_char  hex[] = "0123456789ABCDEF";

    if (log == NULL) {
        log = ngx_cycle->log;
    }

    if (log->log_level < level) {
        return;
    }

    if (len && p[len - 1] == CR) {
        len--;
    }

    d = buf;
    last = buf + sizeof(buf) - 4;

    while (len && d < last) {
        if (*p < 0x20 || *p == 0x7f) {
            *d++ = '\\';
            *d++ = 'x';
            *d++ = hex[*p >> 4];
            *d++ = hex[*p & 0xf];

        } else {
            *d++ = *p;
        }

        p++;
        len--;
    }

    ngx_log_error(level, log, 0, "wsgi: %*s", d - buf, buf);
}


/* one entry per line, the first saying what failed; clears the exception */

void
ngx_http_wsgi_log_exception(ngx_log_t *log, const char *fmt, ...)
{
    u_char      *p, *last, *nl;
    va_list      args;
    PyObject    *exc, *tb_module, *lines, *text, *sep;
    Py_ssize_t   len;
    u_char       msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    ngx_log_error(NGX_LOG_ERR, log, 0, "wsgi: %*s", p - msg, msg);

    exc = ngx_http_wsgi_exception_get();

    if (exc == NULL) {
        return;
    }

    tb_module = NULL;
    lines = NULL;
    text = NULL;
    sep = NULL;

    tb_module = PyImport_ImportModule("traceback");
    if (tb_module == NULL) {
        goto failed;
    }

    lines = PyObject_CallMethod(tb_module, "format_exception", "O", exc);
    if (lines == NULL) {
        goto failed;
    }

    sep = PyUnicode_FromString("");
    if (sep == NULL) {
        goto failed;
    }

    text = PyUnicode_Join(sep, lines);
    if (text == NULL) {
        goto failed;
    }

    p = (u_char *) PyUnicode_AsUTF8AndSize(text, &len);
    if (p == NULL) {
        goto failed;
    }

    last = p + len;

    while (p < last) {
        nl = ngx_strlchr(p, last, LF);
        if (nl == NULL) {
            nl = last;
        }

        ngx_http_wsgi_log_text(log, NGX_LOG_ERR, p, nl - p);

        p = nl + 1;
    }

    goto done;

failed:

    PyErr_Clear();
    ngx_log_error(NGX_LOG_ERR, log, 0, "wsgi: (traceback unavailable)");

done:

    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tb_module);
    Py_DECREF(exc);
}
