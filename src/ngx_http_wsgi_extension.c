
/*
 * nginx mod_wsgi: the extension modules that cannot load in a
 * sub-interpreter, noted while a script is imported in one.
 */


#include "ngx_http_wsgi_module.h"


static PyObject *ngx_http_wsgi_extension_create(PyObject *create,
    PyObject *const *args, Py_ssize_t nargs);


static PyMethodDef  ngx_http_wsgi_extension_create_def = {
    "create_module",
    (PyCFunction) (void (*)(void)) ngx_http_wsgi_extension_create,
    METH_FASTCALL,
    NULL
};


/*
 * While a script is imported in a sub-interpreter, the extension modules
 * that fail to load in it are noted: an ImportError from one of them is
 * what a fallback to the main interpreter can cure.  Returns what unwatch
 * restores, or NULL: not watched.
 */

PyObject *
ngx_http_wsgi_extension_watch(void)
{
    PyObject               *machinery, *loader, *create, *fn, *method;
    PyObject               *watch;

    ngx_http_wsgi_extension_forget();

    watch = NULL;
    loader = NULL;
    create = NULL;
    fn = NULL;
    method = NULL;

    machinery = PyImport_ImportModule("importlib.machinery");
    if (machinery == NULL) {
        goto done;
    }

    loader = PyObject_GetAttrString(machinery, "ExtensionFileLoader");
    if (loader == NULL) {
        goto done;
    }

    create = PyObject_GetAttrString(loader, "create_module");
    if (create == NULL) {
        goto done;
    }

    fn = PyCFunction_New(&ngx_http_wsgi_extension_create_def, create);
    if (fn == NULL) {
        goto done;
    }

    method = PyInstanceMethod_New(fn);
    if (method == NULL) {
        goto done;
    }

    watch = PyTuple_Pack(2, loader, create);
    if (watch == NULL) {
        goto done;
    }

    if (PyObject_SetAttrString(loader, "create_module", method) != 0) {
        Py_CLEAR(watch);
    }

done:

    PyErr_Clear();

    Py_XDECREF(method);
    Py_XDECREF(fn);
    Py_XDECREF(create);
    Py_XDECREF(loader);
    Py_XDECREF(machinery);

    return watch;
}


void
ngx_http_wsgi_extension_unwatch(PyObject *watch)
{
    PyObject  *exc;

    exc = ngx_http_wsgi_exception_get();

    if (PyObject_SetAttrString(PyTuple_GET_ITEM(watch, 0), "create_module",
                               PyTuple_GET_ITEM(watch, 1))
        != 0)
    {
        ngx_http_wsgi_log_exception(ngx_cycle->log, "cannot restore "
                                    "ExtensionFileLoader.create_module");
    }

    Py_DECREF(watch);

    ngx_http_wsgi_exception_set(exc);
}


void
ngx_http_wsgi_extension_forget(void)
{
    ngx_http_wsgi_state_t  *st;

    st = ngx_http_wsgi_state();

    Py_CLEAR(st->ext_error);
    Py_CLEAR(st->ext_name);
}


static PyObject *
ngx_http_wsgi_extension_create(PyObject *create, PyObject *const *args,
    Py_ssize_t nargs)
{
    PyObject               *module, *exc, *name;
    ngx_http_wsgi_state_t  *st;

    module = PyObject_Vectorcall(create, args, nargs, NULL);

    if (module || !PyErr_ExceptionMatches(PyExc_ImportError) || nargs != 2)
    {
        return module;
    }

    exc = ngx_http_wsgi_exception_get();

    name = PyObject_GetAttrString(args[1], "name");

    if (name == NULL || !PyUnicode_Check(name)) {
        PyErr_Clear();
        Py_XSETREF(name, PyUnicode_FromString("?"));
    }

    st = ngx_http_wsgi_state();

    Py_XSETREF(st->ext_error, Py_XNewRef(exc));
    Py_XSETREF(st->ext_name, name);

    ngx_http_wsgi_exception_set(exc);

    return NULL;
}


/* the extension's name, if its ImportError is in what the import raised */

PyObject *
ngx_http_wsgi_extension_failed(PyObject *exc)
{
    PyObject               *e, *next;
    ngx_uint_t              depth;
    ngx_http_wsgi_state_t  *st;

    st = ngx_http_wsgi_state();

    if (st->ext_error == NULL) {
        return NULL;
    }

    /* borrowed, through __cause__ or else __context__ */

    for (e = exc, depth = 0; e && depth < 32; e = next, depth++) {
        if (e == st->ext_error) {
            return st->ext_name;
        }

        next = PyException_GetCause(e);

        if (next == NULL) {
            next = PyException_GetContext(e);
        }

        Py_XDECREF(next);
    }

    return NULL;
}
