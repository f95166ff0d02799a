
/*
 * nginx mod_wsgi: wsgi.file_wrapper.
 */


#include "ngx_http_wsgi_module.h"


/*
 * ngx.FileWrapper(filelike, blksize=8192): created by the application, a
 * plain iterable that reads filelike block by block from its current
 * position; close() closes filelike.  Not tied to a request.
 */

typedef struct {
    PyObject_HEAD
    PyObject                *filelike;
    Py_ssize_t               blksize;
} ngx_http_wsgi_file_wrapper_t;


static PyObject *ngx_http_wsgi_file_wrapper_new(PyTypeObject *type,
    PyObject *args, PyObject *kwargs);
static PyObject *ngx_http_wsgi_file_wrapper_iternext(PyObject *self);
static PyObject *ngx_http_wsgi_file_wrapper_close(PyObject *self,
    PyObject *unused);
static PyObject *ngx_http_wsgi_file_wrapper_get_filelike(PyObject *self,
    void *closure);
static PyObject *ngx_http_wsgi_file_wrapper_get_blksize(PyObject *self,
    void *closure);
static int ngx_http_wsgi_file_wrapper_traverse(PyObject *self,
    visitproc visit, void *arg);
static int ngx_http_wsgi_file_wrapper_clear(PyObject *self);
static void ngx_http_wsgi_file_wrapper_dealloc(PyObject *self);


static PyMethodDef  ngx_http_wsgi_file_wrapper_methods[] = {
    { "close", ngx_http_wsgi_file_wrapper_close, METH_NOARGS,
      "close(): close the file-like object" },
    { NULL, NULL, 0, NULL }
};


static PyGetSetDef  ngx_http_wsgi_file_wrapper_getset[] = {
    { "filelike", ngx_http_wsgi_file_wrapper_get_filelike, NULL, NULL,
      NULL },
    { "blksize", ngx_http_wsgi_file_wrapper_get_blksize, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL }
};


static PyType_Slot  ngx_http_wsgi_file_wrapper_slots[] = {
    { Py_tp_new, ngx_http_wsgi_file_wrapper_new },
    { Py_tp_iter, PyObject_SelfIter },
    { Py_tp_iternext, ngx_http_wsgi_file_wrapper_iternext },
    { Py_tp_methods, ngx_http_wsgi_file_wrapper_methods },
    { Py_tp_getset, ngx_http_wsgi_file_wrapper_getset },
    { Py_tp_traverse, ngx_http_wsgi_file_wrapper_traverse },
    { Py_tp_clear, ngx_http_wsgi_file_wrapper_clear },
    { Py_tp_dealloc, ngx_http_wsgi_file_wrapper_dealloc },
    { 0, NULL }
};


PyType_Spec  ngx_http_wsgi_file_wrapper_spec = {
    "ngx.FileWrapper",
    sizeof(ngx_http_wsgi_file_wrapper_t),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    ngx_http_wsgi_file_wrapper_slots
};


static PyObject *
ngx_http_wsgi_file_wrapper_new(PyTypeObject *type, PyObject *args,
    PyObject *kwargs)
{
    PyObject                      *filelike;
    Py_ssize_t                     blksize;
    ngx_http_wsgi_file_wrapper_t  *fw;

    static char  *kwlist[] = { "filelike", "blksize", NULL };

    blksize = 8192;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:file_wrapper", kwlist,
                                     &filelike, &blksize))
    {
        return NULL;
    }

    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "file_wrapper() blksize must be positive");
        return NULL;
    }

    fw = (ngx_http_wsgi_file_wrapper_t *) type->tp_alloc(type, 0);
    if (fw == NULL) {
        return NULL;
    }

    fw->filelike = Py_NewRef(filelike);
    fw->blksize = blksize;

    return (PyObject *) fw;
}


static PyObject *
ngx_http_wsgi_file_wrapper_get_filelike(PyObject *self, void *closure)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    return Py_NewRef(fw->filelike ? fw->filelike : Py_None);
}


static PyObject *
ngx_http_wsgi_file_wrapper_get_blksize(PyObject *self, void *closure)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    return PyLong_FromSsize_t(fw->blksize);
}


static PyObject *
ngx_http_wsgi_file_wrapper_iternext(PyObject *self)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    PyObject    *data;
    Py_ssize_t   n;

    if (fw->filelike == NULL) {
        return NULL;
    }

    data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (data == NULL) {
        return NULL;
    }

    n = PyObject_Length(data);

    if (n <= 0) {
        /* 0: StopIteration; -1: the length error propagates */
        Py_DECREF(data);
        return NULL;
    }

    return data;
}


static PyObject *
ngx_http_wsgi_file_wrapper_close(PyObject *self, PyObject *unused)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    PyObject  *close, *rv;

    if (fw->filelike == NULL) {
        Py_RETURN_NONE;
    }

    close = PyObject_GetAttrString(fw->filelike, "close");

    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }

        PyErr_Clear();
        Py_RETURN_NONE;
    }

    rv = PyObject_CallNoArgs(close);
    Py_DECREF(close);

    return rv;
}


static int
ngx_http_wsgi_file_wrapper_traverse(PyObject *self, visitproc visit,
    void *arg)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    Py_VISIT(fw->filelike);
    Py_VISIT(Py_TYPE(self));

    return 0;
}


static int
ngx_http_wsgi_file_wrapper_clear(PyObject *self)
{
    Py_CLEAR(((ngx_http_wsgi_file_wrapper_t *) self)->filelike);

    return 0;
}


static void
ngx_http_wsgi_file_wrapper_dealloc(PyObject *self)
{
    PyTypeObject  *type;

    type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void) ngx_http_wsgi_file_wrapper_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}


/*
 * A descriptor of its own (the application may close the file), the
 * position and the rest; NGX_DECLINED, no exception: read block by block.
 */

ngx_int_t
ngx_http_wsgi_file_wrapper_file(PyObject *self, ngx_fd_t *fd, off_t *offset,
    off_t *size)
{
    ngx_http_wsgi_file_wrapper_t *fw = (ngx_http_wsgi_file_wrapper_t *) self;

    int          n;
    long long    pos;
    PyObject    *rv;
    struct stat  st;

    if (fw->filelike == NULL) {
        return NGX_DECLINED;
    }

    rv = PyObject_CallMethod(fw->filelike, "fileno", NULL);
    if (rv == NULL) {
        PyErr_Clear();
        return NGX_DECLINED;
    }

    n = PyLong_Check(rv) ? (int) PyLong_AsLong(rv) : -1;
    Py_DECREF(rv);

    if (n < 0 || PyErr_Occurred()) {
        PyErr_Clear();
        return NGX_DECLINED;
    }

    if (fstat(n, &st) == -1 || !S_ISREG(st.st_mode)) {
        return NGX_DECLINED;
    }

    /* the file-like's position, read-ahead buffers included */

    rv = PyObject_CallMethod(fw->filelike, "tell", NULL);
    if (rv == NULL) {
        PyErr_Clear();
        return NGX_DECLINED;
    }

    pos = PyLong_Check(rv) ? PyLong_AsLongLong(rv) : -1;
    Py_DECREF(rv);

    if (pos < 0 || PyErr_Occurred()) {
        PyErr_Clear();
        return NGX_DECLINED;
    }

    *fd = fcntl(n, F_DUPFD_CLOEXEC, 0);
    if (*fd == -1) {
        return NGX_DECLINED;
    }

    *offset = (off_t) pos;
    *size = (st.st_size > *offset) ? st.st_size - *offset : 0;

    return NGX_OK;
}
