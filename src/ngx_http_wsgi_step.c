
/*
 * nginx mod_wsgi: execution steps.
 *
 * A step is the unit of Python work the nginx side asks for: call the
 * application, produce the next batch of body chunks, or close.  A step
 * runs on whichever thread the nginx side chose, takes the GIL itself,
 * reads only the request snapshot and leaves its results in the context.
 * Exceptions never leave a step: they are logged and mark the context
 * failed.
 */


#include "ngx_http_wsgi_module.h"


static ngx_int_t ngx_http_wsgi_step_call(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_iterate(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_close(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_release(ngx_http_wsgi_ctx_t *ctx);
static uint64_t ngx_http_wsgi_step_clock(void);


void
ngx_http_wsgi_step_run(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step)
{
    PyThreadState  *ts;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0, "wsgi step: %d", step);

    ts = ngx_http_wsgi_python_enter();

    ngx_http_wsgi_step_release(ctx);

    ctx->nout = 0;
    ctx->out_size = 0;

    switch (step) {

    case NGX_HTTP_WSGI_STEP_CALL:
        if (ngx_http_wsgi_step_call(ctx) == NGX_OK) {
            ngx_http_wsgi_step_iterate(ctx);
        }
        break;

    case NGX_HTTP_WSGI_STEP_ITERATE:
        ngx_http_wsgi_step_iterate(ctx);
        break;

    default: /* NGX_HTTP_WSGI_STEP_CLOSE */
        break;
    }

    if (ctx->done || ctx->failed || ctx->aborted
        || step == NGX_HTTP_WSGI_STEP_CLOSE)
    {
        ngx_http_wsgi_step_close(ctx);
    }

    ngx_http_wsgi_python_leave(ts);
}


static ngx_int_t
ngx_http_wsgi_step_call(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject  *app, *environ, *result;

    environ = NULL;
    result = NULL;

    app = ngx_http_wsgi_app_get(ctx->app, ctx->log);
    if (app == NULL) {
        ctx->failed = 1;
        return NGX_ERROR;
    }

    ctx->start_response = ngx_http_wsgi_start_response_new(ctx);
    if (ctx->start_response == NULL) {
        ngx_http_wsgi_log_exception(ctx->log, "failed to create "
                                    "start_response()");
        goto failed;
    }

    environ = ngx_http_wsgi_environ(ctx);
    if (environ == NULL) {
        ngx_http_wsgi_log_exception(ctx->log, "failed to build environ for "
                                    "\"%s\"", ctx->app->path.data);
        goto failed;
    }

    result = PyObject_CallFunctionObjArgs(app, environ, ctx->start_response,
                                          NULL);

    /* the application keeps environ if it wants to */

    Py_CLEAR(environ);

    if (result == NULL) {
        ngx_http_wsgi_log_exception(ctx->log, "application \"%s\" raised "
                                    "an exception", ctx->app->path.data);
        goto failed;
    }

    if (result == Py_None) {
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                      "wsgi: application \"%s\" returned None instead of "
                      "an iterable", ctx->app->path.data);
        goto failed;
    }

    ctx->iterable = result;
    result = NULL;

    /* lists and tuples are walked by index, without an iterator */

    if (!PyList_CheckExact(ctx->iterable)
        && !PyTuple_CheckExact(ctx->iterable))
    {
        ctx->iterator = PyObject_GetIter(ctx->iterable);
        if (ctx->iterator == NULL) {
            ngx_http_wsgi_log_exception(ctx->log, "application \"%s\" "
                                        "returned a non-iterable",
                                        ctx->app->path.data);
            goto failed;
        }
    }

    Py_DECREF(app);

    return NGX_OK;

failed:

    ctx->failed = 1;

    Py_XDECREF(environ);
    Py_XDECREF(result);
    Py_DECREF(app);

    return NGX_ERROR;
}


static void
ngx_http_wsgi_step_iterate(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject    *item;
    Py_ssize_t   i, n;
    uint64_t     start;

    if (ctx->iterator == NULL) {

        /* a list or a tuple: nothing in it can block */

        n = PySequence_Fast_GET_SIZE(ctx->iterable);

        for (i = 0; i < n && !ctx->done; i++) {
            /* borrowed */
            item = PySequence_Fast_GET_ITEM(ctx->iterable, i);

            if (ngx_http_wsgi_step_chunk(ctx, item, "response body item")
                != NGX_OK)
            {
                ctx->failed = 1;
                return;
            }
        }

        ctx->done = 1;
        return;
    }

    for ( ;; ) {

        /*
         * Give the output to nginx when there is enough of it, when the
         * headers have just become final (the first chunk goes out at
         * once), and before asking a slow producer for more.
         */

        if (ctx->out_size >= ctx->bound
            || (ctx->nout
                && (ctx->streaming || (off_t) ctx->out_size == ctx->produced)))
        {
            return;
        }

        if (ctx->client_gone) {
            /* nobody reads what would come next */
            ctx->aborted = 1;
            return;
        }

        start = ngx_http_wsgi_step_clock();

        item = PyIter_Next(ctx->iterator);

        if (ngx_http_wsgi_step_clock() - start >= NGX_HTTP_WSGI_SLOW_NEXT) {
            ctx->streaming = 1;
        }

        if (item == NULL) {
            if (PyErr_Occurred()) {
                ngx_http_wsgi_log_exception(ctx->log, "application \"%s\" "
                                            "raised an exception",
                                            ctx->app->path.data);
                ctx->failed = 1;
                return;
            }

            ctx->done = 1;
            return;
        }

        if (ngx_http_wsgi_step_chunk(ctx, item, "response body item")
            != NGX_OK)
        {
            Py_DECREF(item);
            ctx->failed = 1;
            return;
        }

        Py_DECREF(item);

        if (ctx->done) {
            /* Content-Length reached */
            return;
        }
    }
}


/*
 * Validates a body chunk from the iterable or from write() and appends it to
 * the step's output.  Exact bytes are kept as they are; other bytes-like
 * objects may change after they were handed over, so they are copied.
 */

ngx_int_t
ngx_http_wsgi_step_chunk(ngx_http_wsgi_ctx_t *ctx, PyObject *item,
    const char *what)
{
    size_t      size;
    PyObject   *bytes;
    Py_buffer   view;

    if (PyBytes_CheckExact(item)) {
        bytes = Py_NewRef(item);

    } else if (PyUnicode_Check(item)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not str", what);
        goto failed;

    } else if (PyObject_CheckBuffer(item)) {
        if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) != 0) {
            goto failed;
        }

        bytes = PyBytes_FromStringAndSize(view.buf, view.len);
        PyBuffer_Release(&view);

        if (bytes == NULL) {
            goto failed;
        }

    } else {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.200s",
                     what, Py_TYPE(item)->tp_name);
        goto failed;
    }

    size = PyBytes_GET_SIZE(bytes);

    if (size == 0) {
        Py_DECREF(bytes);
        return NGX_OK;
    }

    if (!ctx->started) {
        Py_DECREF(bytes);
        PyErr_Format(PyExc_RuntimeError, "%s produced before "
                     "start_response() was called", what);
        goto failed;
    }

    ctx->committed = 1;

    if (ctx->length >= 0 && ctx->produced + (off_t) size >= ctx->length) {

        /* the application's Content-Length is what the client gets */

        if (ctx->produced + (off_t) size > ctx->length) {
            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: application \"%s\" produced more than its "
                          "Content-Length of %O bytes, the rest is dropped",
                          ctx->app->path.data, ctx->length);
        }

        size = (size_t) (ctx->length - ctx->produced);
        ctx->done = 1;
    }

    if (size) {
        ngx_http_wsgi_step_output(ctx, bytes,
                                  (u_char *) PyBytes_AS_STRING(bytes), size);
    }

    Py_DECREF(bytes);

    return NGX_OK;

failed:

    ngx_http_wsgi_log_exception(ctx->log, "application \"%s\" produced "
                                "invalid output", ctx->app->path.data);
    return NGX_ERROR;
}


void
ngx_http_wsgi_step_output(ngx_http_wsgi_ctx_t *ctx, PyObject *obj,
    u_char *data, size_t size)
{
    PyObject               *buf;
    ngx_uint_t              n;
    ngx_http_wsgi_chunk_t  *out;

    ctx->out_size += size;
    ctx->produced += size;

    /*
     * Small chunks are copied together into a buffer of our own, which
     * nobody else sees until nginx has sent it, so that many tiny strings
     * do not cost a buffer (and an iovec) each.
     */

    if (size <= NGX_HTTP_WSGI_SMALL && ctx->nout) {
        out = &ctx->out[ctx->nout - 1];

        if (out->coalesce && out->size + size <= NGX_HTTP_WSGI_COALESCE) {
            ngx_memcpy(out->data + out->size, data, size);
            out->size += size;
            return;
        }
    }

    if (ctx->nout == ctx->nalloc) {
        n = ctx->nalloc ? ctx->nalloc * 2 : 8;

        out = PyMem_RawRealloc(ctx->out, n * sizeof(ngx_http_wsgi_chunk_t));
        if (out == NULL) {
            goto failed;
        }

        ctx->out = out;
        ctx->nalloc = n;
    }

    out = &ctx->out[ctx->nout];

    if (size <= NGX_HTTP_WSGI_SMALL) {
        buf = PyBytes_FromStringAndSize(NULL, NGX_HTTP_WSGI_COALESCE);
        if (buf == NULL) {
            PyErr_Clear();
            goto failed;
        }

        out->obj = buf;
        out->data = (u_char *) PyBytes_AS_STRING(buf);
        out->size = size;
        out->coalesce = 1;

        ngx_memcpy(out->data, data, size);

    } else {
        out->obj = Py_NewRef(obj);
        out->data = data;
        out->size = size;
        out->coalesce = 0;
    }

    ctx->nout++;

    return;

failed:

    /* the chunk is lost: fail the response rather than corrupt it */

    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                  "wsgi: out of memory for a response chunk");
    ctx->failed = 1;
}


static void
ngx_http_wsgi_step_close(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject  *close, *rv;

    if (ctx->closed) {
        return;
    }

    ctx->closed = 1;

    /* lists and tuples have no close() */

    if (ctx->iterable
        && !PyList_CheckExact(ctx->iterable)
        && !PyTuple_CheckExact(ctx->iterable))
    {
        close = PyObject_GetAttrString(ctx->iterable, "close");

        if (close == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();

            } else {
                ngx_http_wsgi_log_exception(ctx->log, "close() of \"%s\" "
                                            "failed", ctx->app->path.data);
                ctx->failed = 1;
            }

        } else {
            rv = PyObject_CallNoArgs(close);
            Py_DECREF(close);

            if (rv == NULL) {
                ngx_http_wsgi_log_exception(ctx->log, "close() of \"%s\" "
                                            "raised an exception",
                                            ctx->app->path.data);
                ctx->failed = 1;
            }

            Py_XDECREF(rv);
        }
    }

    Py_CLEAR(ctx->iterator);
    Py_CLEAR(ctx->iterable);

    /* request-scoped objects the application may have kept expire now */

    if (ctx->input) {
        ngx_http_wsgi_input_expire(ctx->input);
        Py_CLEAR(ctx->input);
    }

    if (ctx->errors) {
        ngx_http_wsgi_errors_expire(ctx->errors);
        Py_CLEAR(ctx->errors);
    }

    if (ctx->start_response) {
        ngx_http_wsgi_start_response_expire(ctx->start_response);
        Py_CLEAR(ctx->start_response);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->log, 0, "wsgi closed");
}


static void
ngx_http_wsgi_step_release(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_uint_t   i;
    PyObject   **objs;

    objs = ctx->release.elts;

    for (i = 0; i < ctx->release.nelts; i++) {
        Py_DECREF(objs[i]);
    }

    ctx->release.nelts = 0;
}


/*
 * The end of the request: the nginx side has moved every pin it still had
 * to ctx->release.  Runs on a thread that may take the GIL.
 */

void
ngx_http_wsgi_step_cleanup(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_uint_t      i;
    PyThreadState  *ts;

    ts = ngx_http_wsgi_python_enter();

    ngx_http_wsgi_step_close(ctx);
    ngx_http_wsgi_step_release(ctx);

    for (i = 0; i < ctx->nout; i++) {
        Py_DECREF(ctx->out[i].obj);
    }

    ctx->nout = 0;

    Py_CLEAR(ctx->status);
    Py_CLEAR(ctx->headers);

    ngx_http_wsgi_python_leave(ts);

    PyMem_RawFree(ctx->out);
    ctx->out = NULL;
    ctx->nalloc = 0;
}


static uint64_t
ngx_http_wsgi_step_clock(void)
{
    struct timespec  ts;

    /* microseconds; ngx_current_msec is not updated off the event loop */

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
