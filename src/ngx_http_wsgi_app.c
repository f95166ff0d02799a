
/*
 * nginx mod_wsgi: loading the application scripts, and loading them again
 * when they change.
 */


#include "ngx_http_wsgi_module.h"


static PyObject *ngx_http_wsgi_app_reload(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, PyObject *old, ngx_log_t *log);
static void ngx_http_wsgi_app_retire(ngx_http_wsgi_app_t *app,
    ngx_log_t *log);
static PyObject *ngx_http_wsgi_app_replace(ngx_http_wsgi_app_t *app,
    ngx_log_t *log);
static ngx_int_t ngx_http_wsgi_app_version(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_version_t *v);
static ngx_uint_t ngx_http_wsgi_app_same(ngx_http_wsgi_version_t *a,
    ngx_http_wsgi_version_t *b);
static PyObject *ngx_http_wsgi_app_import(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log);
static ngx_int_t ngx_http_wsgi_app_undo(PyObject *before, ngx_log_t *log);
static int ngx_http_wsgi_app_initializing(PyObject *module);
static PyObject *ngx_http_wsgi_app_source(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_version_t *v, ngx_uint_t *changed);
static PyObject *ngx_http_wsgi_app_exec(PyObject *name, PyObject *source,
    ngx_http_wsgi_app_t *app);
static PyObject *ngx_http_wsgi_app_fallback(ngx_http_wsgi_app_t *app,
    PyObject *exc, PyObject *name, ngx_log_t *log);



/* another thread would find the module half-run; under the GIL */
static PyThreadState  *ngx_http_wsgi_app_importing;
static ngx_pid_t       ngx_http_wsgi_app_importing_pid;


/*
 * NULL: logged and cleared; a failed import is tried again next time.
 * Called in an interpreter of the application's group; a fallback moves
 * the application, and the calling thread with it, to the main one.
 */

PyObject *
ngx_http_wsgi_app_get(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log)
{
    PyObject       *obj, *module;
    PyThreadState  *ts, *importing;

    /* borrowed */
    obj = PyList_GET_ITEM(interp->apps, app->index);

    if (obj != Py_None) {
        if (app->handled == app->changes) {
            return Py_NewRef(obj);
        }

        return ngx_http_wsgi_app_reload(app, interp, obj, log);
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

        if (app->interp == ngx_http_wsgi_interp) {
            interp = app->interp;
        }

        ngx_http_wsgi_python_switch(interp);
        ts = PyThreadState_Get();

        /* borrowed */
        obj = PyList_GET_ITEM(interp->apps, app->index);

        if (obj != Py_None) {
            return Py_NewRef(obj);
        }
    }

    importing = ngx_http_wsgi_app_importing;
    ngx_http_wsgi_app_importing = ts;
    ngx_http_wsgi_app_importing_pid = ngx_getpid();

    /* the import reads the script as it is now */
    app->handled = app->changes;

    ngx_http_wsgi_crash_import(app);

    module = ngx_http_wsgi_app_import(app, interp, log);

    ngx_http_wsgi_crash_imported(app, module != NULL, log);

    ngx_http_wsgi_app_importing = importing;

    if (module == NULL) {
        return NULL;
    }

    obj = ngx_http_wsgi_app_callable(app, module, log);

    if (obj == NULL) {
        return NULL;
    }

    if (app->interp == ngx_http_wsgi_interp) {
        /* moved there by the import */
        interp = app->interp;
    }

    PyList_SetItem(interp->apps, app->index, Py_NewRef(obj));

    ngx_http_wsgi_app_loaded(app, NGX_LOG_INFO, "loaded", log);

    return obj;
}


/* "name" or "object.attribute" of the module, which is stolen; NULL: logged */

PyObject *
ngx_http_wsgi_app_callable(ngx_http_wsgi_app_t *app, PyObject *module,
    ngx_log_t *log)
{
    PyObject  *obj;

    obj = ngx_http_wsgi_dotted_attr(module, app->callable.data);

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

    if (!PyCallable_Check(obj)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "wsgi: \"%s\" in \"%s\" is not callable",
                      app->callable.data, app->path.data);
        Py_DECREF(obj);
        return NULL;
    }

    return obj;
}


/* "name" or "object.attribute" of obj, which is stolen; NULL: raised */

PyObject *
ngx_http_wsgi_dotted_attr(PyObject *obj, u_char *name)
{
    u_char    *p, *dot;
    PyObject  *attr;

    p = name;

    for ( ;; ) {
        dot = (u_char *) ngx_strchr(p, '.');

        if (dot) {
            attr = PyUnicode_FromStringAndSize((char *) p, dot - p);

        } else {
            attr = PyUnicode_FromString((char *) p);
        }

        if (attr == NULL) {
            Py_DECREF(obj);
            return NULL;
        }

        Py_SETREF(obj, PyObject_GetAttr(obj, attr));
        Py_DECREF(attr);

        if (obj == NULL || dot == NULL) {
            return obj;
        }

        p = dot + 1;
    }
}


/* the line of an application (re)loaded, with its group */

void
ngx_http_wsgi_app_loaded(ngx_http_wsgi_app_t *app, ngx_uint_t level,
    const char *what, ngx_log_t *log)
{
    ngx_log_error(level, log, 0, "wsgi: %s \"%s\" from \"%s\"%s%V%s",
                  what, app->callable.data, app->path.data,
                  app->interp->index ? " in application group \"" : "",
                  &app->interp->group->name,
                  app->interp->index ? "\"" : "");
}


/*
 * Reloading, nginx side: a request for the application looks at its
 * script, at most once a second in a worker, and counts the versions it
 * sees; the Python side acts on the count in the request's step.  A
 * version that changes while the Python side reads it is seen changed by
 * the next look.  A stat() of a local file on the event loop is what
 * nginx does for every static file.
 */

void
ngx_http_wsgi_app_check(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    ngx_err_t                err;
    ngx_http_wsgi_version_t  v;

    if (!app->reloading
        || ngx_current_msec - app->looked < NGX_HTTP_WSGI_RELOAD_CHECK)
    {
        return;
    }

    app->looked = ngx_current_msec;

    if (ngx_http_wsgi_app_version(app, &v) != NGX_OK) {
        err = ngx_errno;

        /* logged once for the time it is gone */

        if (app->seen.size != -1) {
            ngx_log_error(NGX_LOG_WARN, log, err,
                          "wsgi: " ngx_file_info_n " \"%s\" failed, the "
                          "application goes on as it is", app->path.data);
            ngx_memzero(&app->seen, sizeof(ngx_http_wsgi_version_t));
            app->seen.size = -1;
        }

        return;
    }

    if (ngx_http_wsgi_app_same(&v, &app->seen)) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "wsgi script changed: \"%s\", size %O",
                   app->path.data, v.size);

    app->seen = v;
    app->changes++;
}


/*
 * Reloading, Python side: the "module" mechanism.  The script is run as a
 * fresh module; if it and its callable are there, the new object serves
 * the requests that come, and those that hold the old one finish with it.
 * Otherwise the old one goes on, and the failed version is not tried
 * again.  A request that comes while another thread imports goes on with
 * the old object, and a later one looks again.
 */

static PyObject *
ngx_http_wsgi_app_reload(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, PyObject *old, ngx_log_t *log)
{
    PyObject                 *obj;
    ngx_int_t                 rc;
    ngx_uint_t                renew, changes;
    PyThreadState            *ts;
    ngx_http_wsgi_version_t   v;

    ts = PyThreadState_Get();

    if (ngx_http_wsgi_app_importing
        && ngx_http_wsgi_app_importing_pid == ngx_getpid())
    {
        return Py_NewRef(old);
    }

    changes = app->changes;

    if (ngx_http_wsgi_app_version(app, &v) != NGX_OK
        || ngx_http_wsgi_app_same(&v, &app->loaded)
        || ngx_http_wsgi_app_same(&v, &app->failed))
    {
        app->handled = changes;
        return Py_NewRef(old);
    }

    /* not in the main interpreter, where a fallback moved it */

    renew = (app->mechanism == NGX_HTTP_WSGI_RELOAD_INTERPRETER
             && interp != ngx_http_wsgi_interp);

    if (renew && ngx_http_wsgi_renew_busy(app, log)) {
        /* the change waits, unhandled */
        return Py_NewRef(old);
    }

    app->handled = changes;

    if (app->mechanism == NGX_HTTP_WSGI_RELOAD_PROCESS
        && ngx_process == NGX_PROCESS_WORKER)
    {
        if (app->retire == 0) {
            ngx_http_wsgi_app_retire(app, log);
        }

        return Py_NewRef(old);
    }

    ngx_http_wsgi_app_importing = ts;
    ngx_http_wsgi_app_importing_pid = ngx_getpid();

    ngx_http_wsgi_crash_import(app);

    obj = NULL;

    if (!renew) {
        obj = ngx_http_wsgi_app_replace(app, log);

    } else {
        rc = ngx_http_wsgi_renew(app, interp, log);

        if (rc == NGX_ERROR) {
            app->failed = v;

        } else if (rc == NGX_DECLINED) {
            /* tried again a second later */
            app->handled = changes - 1;
            app->declined = ngx_current_msec;
        }
    }

    /* the old or the new one is loaded, whichever it is */
    ngx_http_wsgi_crash_imported(app, 1, log);

    ngx_http_wsgi_app_importing = NULL;

    if (obj == NULL) {
        return Py_NewRef(old);
    }

    PyList_SetItem(interp->apps, app->index, Py_NewRef(obj));

    ngx_http_wsgi_app_loaded(app, NGX_LOG_NOTICE, "reloaded", log);

    return obj;
}


/*
 * The "process" mechanism: the worker retires, and nginx's master starts
 * one that imports the changed script, with every module it imports;
 * only a script that compiles is worth that.  The request that found the
 * change is the last this worker takes (see ngx_http_wsgi_send_header()).
 */

static void
ngx_http_wsgi_app_retire(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    PyObject                 *source, *path, *code;
    ngx_uint_t                changed;
    ngx_http_wsgi_version_t   v;

    source = ngx_http_wsgi_app_source(app, &v, &changed);

    if (source == NULL) {
        if (changed) {
            PyErr_Clear();
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "wsgi: script \"%s\" changed while it was read, "
                          "it is looked at again later", app->path.data);
            return;
        }

        app->failed = v;
        ngx_http_wsgi_log_exception(log, "cannot read script \"%s\", the "
                                    "worker goes on with the application "
                                    "loaded before", app->path.data);
        return;
    }

    path = PyUnicode_DecodeFSDefault((char *) app->path.data);

    code = path ? Py_CompileStringObject(PyBytes_AS_STRING(source), path,
                                         Py_file_input, NULL, -1)
                : NULL;

    Py_XDECREF(path);
    Py_DECREF(source);

    if (code == NULL) {
        app->failed = v;
        ngx_http_wsgi_log_exception(log, "script \"%s\" does not compile, "
                                    "the worker goes on with the "
                                    "application loaded before; the script "
                                    "is tried again when it changes",
                                    app->path.data);
        return;
    }

    Py_DECREF(code);

    app->retire = 1;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "wsgi: script \"%s\" changed, this worker retires after "
                  "its requests in flight, and a new one imports it",
                  app->path.data);
}


/*
 * The fresh module is in sys.modules while it runs, as an import puts it,
 * so that code that looks its module up there (typing, dataclasses,
 * pickle) finds it; a failure puts the old one back and undoes the
 * import.  NULL: logged and cleared.
 */

static PyObject *
ngx_http_wsgi_app_replace(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    PyObject                 *modules, *before, *name, *prev, *source;
    PyObject                 *module, *obj, *exc;
    ngx_int_t                 n;
    ngx_uint_t                changed;
    ngx_http_wsgi_version_t   v;

    before = NULL;
    prev = NULL;
    source = NULL;
    obj = NULL;
    exc = NULL;
    changed = 0;

    ngx_memzero(&v, sizeof(ngx_http_wsgi_version_t));

    /* borrowed */
    modules = PyImport_GetModuleDict();

    name = PyUnicode_FromString((char *) app->module.data);
    if (name == NULL) {
        goto failed;
    }

    before = PySet_New(modules);
    if (before == NULL) {
        goto failed;
    }

    source = ngx_http_wsgi_app_source(app, &v, &changed);
    if (source == NULL) {
        goto failed;
    }

    prev = Py_XNewRef(PyDict_GetItemWithError(modules, name));

    if (prev == NULL && PyErr_Occurred()) {
        goto failed;
    }

    if (prev && PyDict_DelItem(modules, name) != 0) {
        goto failed;
    }

    module = ngx_http_wsgi_app_exec(name, source, app);

    if (module) {
        obj = ngx_http_wsgi_app_callable(app, module, log);

        if (obj) {
            app->loaded = v;
            ngx_memzero(&app->failed, sizeof(ngx_http_wsgi_version_t));
            goto done;
        }

        /* logged */
    }

    exc = ngx_http_wsgi_exception_get();

    if (prev) {
        if (PyDict_SetItem(modules, name, prev) != 0) {
            ngx_http_wsgi_log_exception(log, "cannot restore the module of "
                                        "\"%s\"", app->path.data);
        }

    } else if (PyDict_DelItem(modules, name) != 0) {
        PyErr_Clear();
    }

    n = ngx_http_wsgi_app_undo(before, log);

    if (n > 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0, "wsgi: the failed reload of "
                      "\"%s\" is undone: modules removed: %i",
                      app->path.data, n);
    }

failed:

    if (exc == NULL) {
        exc = ngx_http_wsgi_exception_get();
    }

    if (changed) {
        Py_CLEAR(exc);

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "wsgi: script \"%s\" changed while it was read, "
                      "it is reloaded later", app->path.data);
        goto done;
    }

    app->failed = v;

    if (exc) {
        ngx_http_wsgi_exception_set(exc);
        ngx_http_wsgi_log_exception(log, "failed to reload script \"%s\", "
                                    "the application loaded before goes "
                                    "on; the script is tried again when it "
                                    "changes", app->path.data);

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "wsgi: failed to reload script \"%s\", the "
                      "application loaded before goes on; the script is "
                      "tried again when it changes", app->path.data);
    }

done:

    Py_XDECREF(prev);
    Py_XDECREF(source);
    Py_XDECREF(before);
    Py_XDECREF(name);

    return obj;
}


static ngx_int_t
ngx_http_wsgi_app_version(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_version_t *v)
{
    ngx_file_info_t  fi;

    if (ngx_file_info(app->path.data, &fi) == NGX_FILE_ERROR) {
        return NGX_ERROR;
    }

    v->uniq = ngx_file_uniq(&fi);
    v->size = ngx_file_size(&fi);
    v->mtime = fi.st_mtim;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_wsgi_app_same(ngx_http_wsgi_version_t *a,
    ngx_http_wsgi_version_t *b)
{
    return a->uniq == b->uniq
           && a->size == b->size
           && a->mtime.tv_sec == b->mtime.tv_sec
           && a->mtime.tv_nsec == b->mtime.tv_nsec;
}


/*
 * A failed import is undone: the modules it added to sys.modules go, as
 * they may refer to its half-built modules; the next request starts from
 * the same state.  NULL means logged and cleared.
 */

static PyObject *
ngx_http_wsgi_app_import(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log)
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

    watch = (interp->index) ? ngx_http_wsgi_extension_watch() : NULL;

    module = ngx_http_wsgi_app_load(app, NULL);

    if (watch) {
        ngx_http_wsgi_extension_unwatch(watch);
    }

    if (module) {
        if (watch) {
            /* an extension's ImportError the script caught */
            ngx_http_wsgi_extension_forget();
        }

        Py_DECREF(before);
        return module;
    }

    exc = ngx_http_wsgi_exception_get();

    n = ngx_http_wsgi_app_undo(before, log);

    Py_DECREF(before);

    name = watch ? ngx_http_wsgi_extension_failed(exc) : NULL;

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


/*
 * From source, as a module of its own: no bytecode written, .wsgi as .py;
 * *changed: the script changed while it was read.
 */

PyObject *
ngx_http_wsgi_app_load(ngx_http_wsgi_app_t *app, ngx_uint_t *changed)
{
    PyObject                 *name, *source, *module;
    ngx_uint_t                moved;
    ngx_http_wsgi_version_t   v;

    name = PyUnicode_FromString((char *) app->module.data);
    if (name == NULL) {
        return NULL;
    }

    /* another application of the script has run it: its version unknown */

    module = PyImport_GetModule(name);

    if (module || PyErr_Occurred()) {
        Py_DECREF(name);
        return module;
    }

    source = ngx_http_wsgi_app_source(app, &v, &moved);

    if (changed) {
        *changed = moved;
    }

    if (source) {
        module = ngx_http_wsgi_app_exec(name, source, app);
        Py_DECREF(source);

        if (module) {
            app->loaded = v;
        }
    }

    Py_DECREF(name);

    return module;
}


/*
 * The script's text, read between two looks at its version, so that a
 * script being written is not run half-written; *changed: it was.
 */

static PyObject *
ngx_http_wsgi_app_source(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_version_t *v, ngx_uint_t *changed)
{
    PyObject                 *path, *file, *source, *exc, *rc;
    ngx_http_wsgi_version_t   after;

    *changed = 0;

    if (ngx_http_wsgi_app_version(app, v) != NGX_OK) {
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError,
                                              (char *) app->path.data);
    }

    path = PyUnicode_DecodeFSDefault((char *) app->path.data);
    if (path == NULL) {
        return NULL;
    }

    file = PyFile_OpenCodeObject(path);
    Py_DECREF(path);

    if (file == NULL) {
        return NULL;
    }

    source = PyObject_CallMethod(file, "read", NULL);

    exc = ngx_http_wsgi_exception_get();

    rc = PyObject_CallMethod(file, "close", NULL);
    Py_DECREF(file);

    if (exc) {
        Py_XDECREF(rc);
        PyErr_Clear();
        ngx_http_wsgi_exception_set(exc);
        return NULL;
    }

    if (rc == NULL) {
        Py_DECREF(source);
        return NULL;
    }

    Py_DECREF(rc);

    if (ngx_http_wsgi_app_version(app, &after) != NGX_OK
        || !ngx_http_wsgi_app_same(v, &after))
    {
        Py_DECREF(source);
        *changed = 1;

        PyErr_Format(PyExc_RuntimeError, "script \"%s\" changed while it "
                     "was read", app->path.data);
        return NULL;
    }

    return source;
}


static PyObject *
ngx_http_wsgi_app_exec(PyObject *name, PyObject *source,
    ngx_http_wsgi_app_t *app)
{
    PyObject  *path, *builtins, *code, *module;

    module = NULL;
    builtins = NULL;
    code = NULL;

    path = PyUnicode_DecodeFSDefault((char *) app->path.data);
    if (path == NULL) {
        return NULL;
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
    Py_DECREF(path);

    return module;
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
        ngx_http_wsgi_extension_forget();

        ngx_http_wsgi_exception_set(exc);
        ngx_http_wsgi_log_exception(log, "failed to load script \"%s\", "
                                    "its import will be retried by the "
                                    "next request", app->path.data);
        return NULL;
    }

    Py_DECREF(exc);
    ngx_http_wsgi_extension_forget();

    app->interp = ngx_http_wsgi_interp;
    ngx_http_wsgi_python_switch(app->interp);

    return ngx_http_wsgi_app_import(app, app->interp, log);
}
