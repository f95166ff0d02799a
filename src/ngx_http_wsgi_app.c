
/*
 * nginx mod_wsgi: loading the application scripts.
 */


#include "ngx_http_wsgi_module.h"


static PyObject *ngx_http_wsgi_app_load(ngx_http_wsgi_app_t *app);


/*
 * Returns a new reference to the application callable, importing its
 * script on first use.  A script that fails to import is logged and tried
 * again by the next request.  NULL means logged and cleared.
 */

PyObject *
ngx_http_wsgi_app_get(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    u_char    *p, *dot;
    PyObject  *obj, *module, *attr;

    /* borrowed */
    obj = PyList_GET_ITEM(ngx_http_wsgi_interp->apps, app->index);

    if (obj != Py_None) {
        return Py_NewRef(obj);
    }

    ngx_http_wsgi_crash_import(app);

    module = ngx_http_wsgi_app_load(app);

    ngx_http_wsgi_crash_imported(app, module != NULL, log);

    if (module == NULL) {
        ngx_http_wsgi_log_exception(log, "failed to load script \"%s\"",
                                    app->path.data);
        return NULL;
    }

    /* "name" or "object.attribute" */

    obj = module;
    p = app->callable.data;

    for ( ;; ) {
        dot = (u_char *) ngx_strchr(p, '.');

        if (dot) {
            attr = PyUnicode_FromStringAndSize((char *) p, dot - p);

        } else {
            attr = PyUnicode_FromString((char *) p);
        }

        if (attr == NULL) {
            Py_DECREF(obj);
            ngx_http_wsgi_log_exception(log, "callable \"%s\" of \"%s\"",
                                        app->callable.data, app->path.data);
            return NULL;
        }

        Py_SETREF(obj, PyObject_GetAttr(obj, attr));
        Py_DECREF(attr);

        if (obj == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "wsgi: callable \"%s\" not found in \"%s\"",
                              app->callable.data, app->path.data);
                return NULL;
            }

            ngx_http_wsgi_log_exception(log, "callable \"%s\" of \"%s\"",
                                        app->callable.data, app->path.data);
            return NULL;
        }

        if (dot == NULL) {
            break;
        }

        p = dot + 1;
    }

    if (!PyCallable_Check(obj)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "wsgi: \"%s\" in \"%s\" is not callable",
                      app->callable.data, app->path.data);
        Py_DECREF(obj);
        return NULL;
    }

    PyList_SetItem(ngx_http_wsgi_interp->apps, app->index, Py_NewRef(obj));

    ngx_log_error(NGX_LOG_INFO, log, 0, "wsgi: loaded \"%s\" from \"%s\"",
                  app->callable.data, app->path.data);

    return obj;
}


/*
 * The script is compiled from its source and executed as a module of its
 * own name: no bytecode is written next to it, and a .wsgi file loads the
 * same way as a .py file.  A module another location already imported is
 * reused.
 */

static PyObject *
ngx_http_wsgi_app_load(ngx_http_wsgi_app_t *app)
{
    PyObject  *name, *path, *file, *source, *builtins, *code, *module;

    name = PyUnicode_FromString((char *) app->module.data);
    if (name == NULL) {
        return NULL;
    }

    module = PyImport_GetModule(name);

    if (module || PyErr_Occurred()) {
        Py_DECREF(name);
        return module;
    }

    path = NULL;
    file = NULL;
    source = NULL;
    builtins = NULL;
    code = NULL;

    path = PyUnicode_DecodeFSDefault((char *) app->path.data);
    if (path == NULL) {
        goto done;
    }

    file = PyFile_OpenCodeObject(path);
    if (file == NULL) {
        goto done;
    }

    source = PyObject_CallMethod(file, "read", NULL);

    Py_XDECREF(PyObject_CallMethod(file, "close", NULL));

    if (source == NULL || PyErr_Occurred()) {
        goto done;
    }

    builtins = PyImport_ImportModule("builtins");
    if (builtins == NULL) {
        goto done;
    }

    code = PyObject_CallMethod(builtins, "compile", "OOsii", source, path,
                               "exec", 0, 1);
    if (code == NULL) {
        goto done;
    }

    module = PyImport_ExecCodeModuleObject(name, code, path, NULL);

done:

    Py_XDECREF(code);
    Py_XDECREF(builtins);
    Py_XDECREF(source);
    Py_XDECREF(file);
    Py_XDECREF(path);
    Py_DECREF(name);

    return module;
}
