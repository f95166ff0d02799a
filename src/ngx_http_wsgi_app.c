
/*
 * nginx mod_wsgi: loading the application scripts.
 */


#include "ngx_http_wsgi_module.h"


static PyObject *ngx_http_wsgi_app_import(ngx_http_wsgi_app_t *app,
    ngx_log_t *log);
static ngx_int_t ngx_http_wsgi_app_undo(PyObject *before, ngx_log_t *log);
static int ngx_http_wsgi_app_initializing(PyObject *module);
static PyObject *ngx_http_wsgi_app_load(ngx_http_wsgi_app_t *app);
static PyObject *ngx_http_wsgi_app_watch(void);
static void ngx_http_wsgi_app_unwatch(PyObject *watch);
static void ngx_http_wsgi_app_forget(void);
static PyObject *ngx_http_wsgi_app_create_module(PyObject *create,
    PyObject *const *args, Py_ssize_t nargs);
static PyObject *ngx_http_wsgi_app_extension(PyObject *exc);
static PyObject *ngx_http_wsgi_app_fallback(ngx_http_wsgi_app_t *app,
    PyObject *exc, PyObject *name, ngx_log_t *log);


static PyMethodDef  ngx_http_wsgi_app_create_module_def = {
    "create_module",
    (PyCFunction) (void (*)(void)) ngx_http_wsgi_app_create_module,
    METH_FASTCALL,
    NULL
};


/* another thread would find the module half-run; under the GIL */
static PyThreadState  *ngx_http_wsgi_app_importing;
static ngx_pid_t       ngx_http_wsgi_app_importing_pid;


/*
 * NULL: logged and cleared; a failed import is tried again next time.
 * Called in the application's interpreter; a fallback moves it, and the
 * calling thread with it, to the main one.
 */

PyObject *
ngx_http_wsgi_app_get(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    u_char         *p, *dot;
    PyObject       *obj, *module, *attr;
    PyThreadState  *ts, *importing;

    /* borrowed */
    obj = PyList_GET_ITEM(app->interp->apps, app->index);

    if (obj != Py_None) {
        return Py_NewRef(obj);
    }

    /* one import at a time: the crash slot and the undo count on it too */

    ts = PyThreadState_Get();

    while (ngx_http_wsgi_app_importing
           && ngx_http_wsgi_app_importing != ts
           && ngx_http_wsgi_app_importing_pid == ngx_getpid())
    {
        Py_BEGIN_ALLOW_THREADS
        ngx_msleep(1);
        Py_END_ALLOW_THREADS

        /* the other import may have moved it to the main interpreter */

        ngx_http_wsgi_python_switch(app->interp);
        ts = PyThreadState_Get();

        /* borrowed */
        obj = PyList_GET_ITEM(app->interp->apps, app->index);

        if (obj != Py_None) {
            return Py_NewRef(obj);
        }
    }

    importing = ngx_http_wsgi_app_importing;
    ngx_http_wsgi_app_importing = ts;
    ngx_http_wsgi_app_importing_pid = ngx_getpid();

    ngx_http_wsgi_crash_import(app);

    module = ngx_http_wsgi_app_import(app, log);

    ngx_http_wsgi_crash_imported(app, module != NULL, log);

    ngx_http_wsgi_app_importing = importing;

    if (module == NULL) {
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

    PyList_SetItem(app->interp->apps, app->index, Py_NewRef(obj));

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "wsgi: loaded \"%s\" from \"%s\"%s%V%s",
                  app->callable.data, app->path.data,
                  app->interp->index ? " in application group \"" : "",
                  &app->interp->group->name,
                  app->interp->index ? "\"" : "");

    return obj;
}


/*
 * A failed import is undone: the modules it added to sys.modules go, as
 * they may refer to its half-built modules; the next request starts from
 * the same state.  NULL means logged and cleared.
 */

static PyObject *
ngx_http_wsgi_app_import(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    PyObject   *before, *module, *exc, *watch, *name;
    ngx_int_t   n;

    /* borrowed */
    module = PyImport_GetModuleDict();

    before = PySet_New(module);
    if (before == NULL) {
        ngx_http_wsgi_log_exception(log, "failed to load script \"%s\"",
                                    app->path.data);
        return NULL;
    }

    watch = (app->interp->index) ? ngx_http_wsgi_app_watch() : NULL;

    module = ngx_http_wsgi_app_load(app);

    if (watch) {
        ngx_http_wsgi_app_unwatch(watch);
    }

    if (module) {
        if (watch) {
            /* an extension's ImportError the script caught */
            ngx_http_wsgi_app_forget();
        }

        Py_DECREF(before);
        return module;
    }

    exc = ngx_http_wsgi_exception_get();

    n = ngx_http_wsgi_app_undo(before, log);

    Py_DECREF(before);

    name = watch ? ngx_http_wsgi_app_extension(exc) : NULL;

    if (name) {
        return ngx_http_wsgi_app_fallback(app, exc, name, log);
    }

    ngx_http_wsgi_exception_set(exc);

    ngx_http_wsgi_log_exception(log, "failed to load script \"%s\", its "
                                "import will be retried by the next request",
                                app->path.data);

    if (n > 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0, "wsgi: the failed import of "
                      "\"%s\" is undone: modules removed: %i",
                      app->path.data, n);
    }

    return NULL;
}


/*
 * Extension modules stay: some (PyO3's) cannot be initialised twice, and
 * hold no half-built Python.  So does a module still being imported: it is
 * another thread's.  Returns how many went, or NGX_ERROR (logged).
 */

static ngx_int_t
ngx_http_wsgi_app_undo(PyObject *before, ngx_log_t *log)
{
    int          rc;
    PyObject    *modules, *names, *name, *module, *file, *py, *pyc;
    ngx_int_t    n;
    Py_ssize_t   i;

    names = NULL;

    py = PyUnicode_FromString(".py");
    pyc = PyUnicode_FromString(".pyc");

    if (py == NULL || pyc == NULL) {
        goto failed;
    }

    /* borrowed */
    modules = PyImport_GetModuleDict();

    names = PyDict_Keys(modules);
    if (names == NULL) {
        goto failed;
    }

    n = 0;

    for (i = 0; i < PyList_GET_SIZE(names); i++) {
        /* borrowed */
        name = PyList_GET_ITEM(names, i);

        rc = PySet_Contains(before, name);

        if (rc == -1) {
            goto failed;
        }

        if (rc == 1) {
            continue;
        }

        /* borrowed */
        module = PyDict_GetItemWithError(modules, name);

        if (module == NULL) {
            if (PyErr_Occurred()) {
                goto failed;
            }

            continue;
        }

        if (ngx_http_wsgi_app_initializing(module)) {
            continue;
        }

        file = PyObject_GetAttrString(module, "__file__");

        if (file == NULL) {
            /* a built-in module, a namespace package, not a module */
            PyErr_Clear();
            continue;
        }

        rc = PyUnicode_Check(file)
             && (PyUnicode_Tailmatch(file, py, 0, PY_SSIZE_T_MAX, 1) > 0
                 || PyUnicode_Tailmatch(file, pyc, 0, PY_SSIZE_T_MAX, 1)
                    > 0);

        Py_DECREF(file);

        if (PyErr_Occurred()) {
            goto failed;
        }

        if (rc && PyDict_DelItem(modules, name) == 0) {
            n++;
        }

        if (PyErr_Occurred()) {
            goto failed;
        }
    }

    Py_DECREF(names);
    Py_DECREF(py);
    Py_DECREF(pyc);

    return n;

failed:

    Py_XDECREF(names);
    Py_XDECREF(py);
    Py_XDECREF(pyc);

    ngx_http_wsgi_log_exception(log, "cannot undo a failed import");

    return NGX_ERROR;
}


/* module.__spec__._initializing, as importlib sets it while it imports */

static int
ngx_http_wsgi_app_initializing(PyObject *module)
{
    int        rc;
    PyObject  *spec, *flag;

    spec = PyObject_GetAttrString(module, "__spec__");

    if (spec == NULL) {
        PyErr_Clear();
        return 0;
    }

    flag = PyObject_GetAttrString(spec, "_initializing");
    Py_DECREF(spec);

    if (flag == NULL) {
        PyErr_Clear();
        return 0;
    }

    rc = PyObject_IsTrue(flag);
    Py_DECREF(flag);

    if (rc == -1) {
        PyErr_Clear();
        return 0;
    }

    return rc;
}


/* from source, as a module of its own: no bytecode written, .wsgi as .py */

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


/*
 * While a script is imported in a sub-interpreter, the extension modules
 * that fail to load in it are noted: an ImportError from one of them is
 * what a fallback to the main interpreter can cure.  Returns what unwatch
 * restores, or NULL: not watched.
 */

static PyObject *
ngx_http_wsgi_app_watch(void)
{
    PyObject               *machinery, *loader, *create, *fn, *method;
    PyObject               *watch;
    ngx_http_wsgi_app_forget();

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

    fn = PyCFunction_New(&ngx_http_wsgi_app_create_module_def, create);
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


static void
ngx_http_wsgi_app_unwatch(PyObject *watch)
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


static void
ngx_http_wsgi_app_forget(void)
{
    ngx_http_wsgi_state_t  *st;

    st = ngx_http_wsgi_state();

    Py_CLEAR(st->ext_error);
    Py_CLEAR(st->ext_name);
}


static PyObject *
ngx_http_wsgi_app_create_module(PyObject *create, PyObject *const *args,
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

static PyObject *
ngx_http_wsgi_app_extension(PyObject *exc)
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


/*
 * The application needs an extension that cannot load in its
 * sub-interpreter: with "wsgi_subinterpreter_fallback main", it runs in
 * the main one from now on.  exc is stolen.
 */

static PyObject *
ngx_http_wsgi_app_fallback(ngx_http_wsgi_app_t *app, PyObject *exc,
    PyObject *name, ngx_log_t *log)
{
    const char  *ext;

    ext = PyUnicode_AsUTF8(name);
    if (ext == NULL) {
        PyErr_Clear();
        ext = "?";
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "wsgi: extension module \"%s\" cannot be loaded in the "
                  "sub-interpreter of application group \"%V\", for \"%s\"%s",
                  ext, &app->interp->group->name, app->path.data,
                  app->fallback ? ": the application runs in the main "
                                  "interpreter" : "");

    if (!app->fallback) {
        ngx_http_wsgi_app_forget();

        ngx_http_wsgi_exception_set(exc);
        ngx_http_wsgi_log_exception(log, "failed to load script \"%s\", "
                                    "its import will be retried by the "
                                    "next request", app->path.data);
        return NULL;
    }

    Py_DECREF(exc);
    ngx_http_wsgi_app_forget();

    app->interp = ngx_http_wsgi_interp;
    ngx_http_wsgi_python_switch(app->interp);

    return ngx_http_wsgi_app_import(app, log);
}
