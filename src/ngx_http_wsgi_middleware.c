
/*
 * nginx mod_wsgi: the wsgi_middleware stack of a location, built on its
 * first request in the application's interpreter and kept in the state of
 * that interpreter's "ngx" module, with the application object it wraps:
 * a reloaded application gets a stack of its own.
 */


#include "ngx_http_wsgi_module.h"


static PyObject *ngx_http_wsgi_middleware_find(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_middleware_t *mw);
static PyObject *ngx_http_wsgi_middleware_keep(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_state_t *st, PyObject *app, PyObject *obj);


/*
 * The application as nginx calls it, first(second(...(app))): the first
 * one listed sees the request first.  Steals app.  NULL: logged and
 * cleared, and nothing is kept, so that the next request tries again.
 */

PyObject *
ngx_http_wsgi_middleware_get(ngx_http_wsgi_ctx_t *ctx, PyObject *app)
{
    PyObject                    *obj, *factory, *wrapped, *kept;
    ngx_uint_t                   i, index;
    ngx_http_wsgi_state_t       *st;
    ngx_http_wsgi_middleware_t  *mw;

    st = ngx_http_wsgi_state();
    index = ctx->snap.location;

    /* borrowed: (app, stack) */
    kept = (index < st->nmiddleware) ? st->middleware[index] : NULL;

    if (kept != NULL && PyTuple_GET_ITEM(kept, 0) == app) {
        Py_DECREF(app);
        return Py_NewRef(PyTuple_GET_ITEM(kept, 1));
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                   "wsgi middleware: %ui for location %ui",
                   ctx->middleware->nelts, index);

    mw = ctx->middleware->elts;
    obj = Py_NewRef(app);

    for (i = ctx->middleware->nelts; i-- > 0; /* void */) {

        factory = ngx_http_wsgi_middleware_find(ctx, &mw[i]);
        if (factory == NULL) {
            Py_DECREF(obj);
            Py_DECREF(app);
            return NULL;
        }

        wrapped = PyObject_CallOneArg(factory, obj);

        Py_DECREF(factory);
        Py_DECREF(obj);

        if (wrapped == NULL) {
            ngx_http_wsgi_log_exception(ctx->log, "middleware \"%s:%s\" for "
                                        "\"%s\" raised an exception",
                                        mw[i].module.data,
                                        mw[i].callable.data,
                                        ctx->app->path.data);
            Py_DECREF(app);
            return NULL;
        }

        if (!PyCallable_Check(wrapped)) {
            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: middleware \"%s:%s\" for \"%s\" returned "
                          "a non-callable %s", mw[i].module.data,
                          mw[i].callable.data, ctx->app->path.data,
                          Py_TYPE(wrapped)->tp_name);
            Py_DECREF(wrapped);
            Py_DECREF(app);
            return NULL;
        }

        obj = wrapped;
    }

    obj = ngx_http_wsgi_middleware_keep(ctx, st, app, obj);

    Py_DECREF(app);

    return obj;
}


/* module.callable, the module imported from sys.path; NULL: logged */

static PyObject *
ngx_http_wsgi_middleware_find(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_middleware_t *mw)
{
    PyObject  *obj;

    obj = PyImport_ImportModule((char *) mw->module.data);

    if (obj == NULL) {
        ngx_http_wsgi_log_exception(ctx->log, "middleware \"%s:%s\" for "
                                    "\"%s\": import failed, retried by the "
                                    "next request", mw->module.data,
                                    mw->callable.data, ctx->app->path.data);
        return NULL;
    }

    obj = ngx_http_wsgi_dotted_attr(obj, mw->callable.data);

    if (obj == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            goto failed;
        }

        PyErr_Clear();

        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                      "wsgi: middleware \"%s:%s\" for \"%s\": callable "
                      "not found", mw->module.data, mw->callable.data,
                      ctx->app->path.data);
        return NULL;
    }

    if (!PyCallable_Check(obj)) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                      "wsgi: middleware \"%s:%s\" for \"%s\" is not callable",
                      mw->module.data, mw->callable.data,
                      ctx->app->path.data);
        Py_DECREF(obj);
        return NULL;
    }

    return obj;

failed:

    ngx_http_wsgi_log_exception(ctx->log, "middleware \"%s:%s\" for \"%s\"",
                                mw->module.data, mw->callable.data,
                                ctx->app->path.data);
    return NULL;
}


/*
 * Another thread may have built the stack while this one ran Python: the
 * stack kept first for app is the one every request gets.  A stack for
 * another application object is replaced.  Steals obj.
 */

static PyObject *
ngx_http_wsgi_middleware_keep(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_state_t *st, PyObject *app, PyObject *obj)
{
    size_t       n;
    PyObject   **p, *kept;
    ngx_uint_t   index;

    index = ctx->snap.location;

    if (index >= st->nmiddleware) {
        n = index + 8;

        p = PyMem_Realloc(st->middleware, n * sizeof(PyObject *));
        if (p == NULL) {
            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: no memory for the middleware of \"%s\"",
                          ctx->app->path.data);
            Py_DECREF(obj);
            return NULL;
        }

        ngx_memzero(&p[st->nmiddleware],
                    (n - st->nmiddleware) * sizeof(PyObject *));

        st->middleware = p;
        st->nmiddleware = n;
    }

    /* borrowed */
    kept = st->middleware[index];

    if (kept != NULL && PyTuple_GET_ITEM(kept, 0) == app) {
        Py_SETREF(obj, Py_NewRef(PyTuple_GET_ITEM(kept, 1)));
        return obj;
    }

    kept = PyTuple_Pack(2, app, obj);
    if (kept == NULL) {
        ngx_http_wsgi_log_exception(ctx->log, "middleware of \"%s\"",
                                    ctx->app->path.data);
        Py_DECREF(obj);
        return NULL;
    }

    Py_XSETREF(st->middleware[index], kept);

    ngx_log_error(NGX_LOG_INFO, ctx->log, 0,
                  "wsgi: %ui middleware loaded for \"%s\"",
                  ctx->middleware->nelts, ctx->app->path.data);

    return obj;
}
