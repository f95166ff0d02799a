
/*
 * nginx mod_wsgi: wsgi.errors, sys.stdout and sys.stderr, and tracebacks,
 * all written to nginx's error log one line per entry, prefixed "wsgi: ".
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_LINE_MAX  4096


/*
 * ngx.Errors: a text stream into the error log.  The one in environ is
 * created by the call step with the request's log and expires when the
 * request is closed (writes then raise RuntimeError); the ones installed
 * as sys.stdout and sys.stderr live as long as the interpreter and log to
 * the cycle's log.  A partial line waits for its newline or for flush().
 */

typedef struct {
    PyObject_HEAD
    ngx_log_t               *log;
    ngx_uint_t               level;
    unsigned                 global:1;
    unsigned                 expired:1;
    u_char                  *line;       /* PyMem_Malloc()ed */
    size_t                   len;
} ngx_http_wsgi_errors_t;


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
static void ngx_http_wsgi_errors_emit(ngx_http_wsgi_errors_t *err,
    u_char *p, size_t len);


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


/* log == NULL: a process-wide stream logging to the cycle's log */

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
    err->level = level;
    err->global = (log == NULL);
    err->expired = 0;
    err->line = NULL;
    err->len = 0;

    return (PyObject *) err;
}


/* an expired wsgi.errors nobody else holds serves another request */

void
ngx_http_wsgi_errors_rebind(PyObject *self, ngx_log_t *log)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    err->log = log;
    err->expired = 0;
    err->len = 0;
}


void
ngx_http_wsgi_errors_expire(PyObject *self)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    if (err->len) {
        ngx_http_wsgi_errors_emit(err, err->line, err->len);
        err->len = 0;
    }

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


static void
ngx_http_wsgi_errors_emit(ngx_http_wsgi_errors_t *err, u_char *p, size_t len)
{
    ngx_log_t  *log;

    log = err->global ? ngx_cycle->log : err->log;

    if (len && p[len - 1] == CR) {
        len--;
    }

    ngx_log_error(err->level, log, 0, "wsgi: %*s", len, p);
}


static PyObject *
ngx_http_wsgi_errors_write(PyObject *self, PyObject *arg)
{
    ngx_http_wsgi_errors_t *err = (ngx_http_wsgi_errors_t *) self;

    u_char      *p, *last, *nl, *line;
    size_t       size, n;
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

    p = (u_char *) s;
    last = p + len;

    while (p < last) {
        nl = ngx_strlchr(p, last, LF);

        n = (nl ? nl : last) - p;

        if (err->len || nl == NULL) {

            /* join with (or keep as) the pending partial line */

            size = ngx_min(err->len + n, NGX_HTTP_WSGI_LINE_MAX);

            if (err->line == NULL) {
                err->line = PyMem_Malloc(NGX_HTTP_WSGI_LINE_MAX);
                if (err->line == NULL) {
                    return PyErr_NoMemory();
                }
            }

            line = err->line;
            ngx_memcpy(line + err->len, p, size - err->len);
            err->len = size;

            if (nl == NULL && err->len < NGX_HTTP_WSGI_LINE_MAX) {
                break;
            }

            ngx_http_wsgi_errors_emit(err, err->line, err->len);
            err->len = 0;

        } else {
            ngx_http_wsgi_errors_emit(err, p, n);
        }

        p += n + (nl ? 1 : 0);
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

    if (err->len) {
        ngx_http_wsgi_errors_emit(err, err->line, err->len);
        err->len = 0;
    }

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

    if (err->len && !err->expired) {
        ngx_http_wsgi_errors_emit(err, err->line, err->len);
    }

    PyMem_Free(err->line);

    type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}


/*
 * Logs the current exception with its traceback, one entry per line, and
 * clears it.  The first entry says what failed.
 */

void
ngx_http_wsgi_log_exception(ngx_log_t *log, const char *fmt, ...)
{
    u_char      *p, *last, *nl;
    va_list      args;
    PyObject    *type, *value, *tb, *tb_module, *lines, *text, *sep;
    Py_ssize_t   len;
    u_char       msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    ngx_log_error(NGX_LOG_ERR, log, 0, "wsgi: %*s", p - msg, msg);

    PyErr_Fetch(&type, &value, &tb);

    if (type == NULL) {
        return;
    }

    PyErr_NormalizeException(&type, &value, &tb);

    if (tb && value) {
        PyException_SetTraceback(value, tb);
    }

    tb_module = NULL;
    lines = NULL;
    text = NULL;
    sep = NULL;

    tb_module = PyImport_ImportModule("traceback");
    if (tb_module == NULL) {
        goto failed;
    }

    lines = PyObject_CallMethod(tb_module, "format_exception", "OOO", type,
                                value ? value : Py_None,
                                tb ? tb : Py_None);
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

        ngx_log_error(NGX_LOG_ERR, log, 0, "wsgi: %*s", nl - p, p);

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
    Py_DECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}
