
/*
 * nginx mod_wsgi: what differs between the C APIs of the Pythons it builds
 * with; included by ngx_http_wsgi_module.h only.
 */


#ifndef _NGX_HTTP_WSGI_COMPAT_H_INCLUDED_
#define _NGX_HTTP_WSGI_COMPAT_H_INCLUDED_


/*
 * Python 3.11 to 3.13: the one place where their C APIs differ.  3.12
 * holds the raised exception as one object (the type, value, traceback
 * triple is deprecated), has no legacy str that needs making ready, has
 * the member types in Python.h (structmember.h's names are deprecated),
 * creates sub-interpreters from a configuration, and binds PyGILState to
 * the thread state a thread ran last.
 */

#if (PY_VERSION_HEX >= 0x030C0000)

#define ngx_http_wsgi_exception_get()   PyErr_GetRaisedException()
#define ngx_http_wsgi_exception_set(e)  PyErr_SetRaisedException(e)
#define ngx_http_wsgi_str_ready(s)      0

#define NGX_HTTP_WSGI_T_PYSSIZET        Py_T_PYSSIZET
#define NGX_HTTP_WSGI_READONLY          Py_READONLY
#define NGX_HTTP_WSGI_GILSTATE_LAST     1

/* an extension without sub-interpreter support fails to import in one */

static ngx_inline PyStatus
ngx_http_wsgi_new_interpreter(PyThreadState **ts)
{
    PyInterpreterConfig  config;

    ngx_memzero(&config, sizeof(PyInterpreterConfig));

    config.use_main_obmalloc = 1;
    config.allow_fork = 1;
    config.allow_exec = 1;
    config.allow_threads = 1;
    config.allow_daemon_threads = 1;
    config.check_multi_interp_extensions = 1;
    config.gil = PyInterpreterConfig_SHARED_GIL;

    return Py_NewInterpreterFromConfig(ts, &config);
}

#else

#include <structmember.h>

#define NGX_HTTP_WSGI_T_PYSSIZET        T_PYSSIZET
#define NGX_HTTP_WSGI_READONLY          READONLY
#define NGX_HTTP_WSGI_GILSTATE_LAST     0

/* the exception raised, normalized, with its traceback; or NULL */

static ngx_inline PyObject *
ngx_http_wsgi_exception_get(void)
{
    PyObject  *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);

    if (type == NULL) {
        return NULL;
    }

    PyErr_NormalizeException(&type, &value, &tb);

    if (value != NULL && tb != NULL) {
        (void) PyException_SetTraceback(value, tb);
    }

    Py_DECREF(type);
    Py_XDECREF(tb);

    return value;
}


/* raises exc, a reference it steals; NULL clears */

static ngx_inline void
ngx_http_wsgi_exception_set(PyObject *exc)
{
    if (exc == NULL) {
        PyErr_Restore(NULL, NULL, NULL);
        return;
    }

    PyErr_Restore(Py_NewRef((PyObject *) Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
}

#define ngx_http_wsgi_str_ready(s)      PyUnicode_READY(s)

static ngx_inline PyStatus
ngx_http_wsgi_new_interpreter(PyThreadState **ts)
{
    *ts = Py_NewInterpreter();

    return *ts ? PyStatus_Ok() : PyStatus_Error("Py_NewInterpreter() failed");
}

#endif


#endif /* _NGX_HTTP_WSGI_COMPAT_H_INCLUDED_ */
