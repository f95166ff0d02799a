
/*
 * nginx mod_wsgi: execution steps, the Python work the nginx side asks
 * for.  A step takes the GIL, reads only the snapshot, leaves its results
 * in the context and logs every exception.
 */


#include "ngx_http_wsgi_module.h"


static ngx_int_t ngx_http_wsgi_step_call(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_file(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_iterate(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_close(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_release(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_back(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_drain(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_step_follow(ngx_http_wsgi_ctx_t *ctx);
static uint64_t ngx_http_wsgi_step_clock(void);
static void ngx_http_wsgi_step_output(ngx_http_wsgi_ctx_t *ctx, PyObject *obj,
    u_char *data, size_t size);


void
ngx_http_wsgi_step_run(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step)
{
    ngx_http_wsgi_python_enter(ctx->interp);

    ngx_http_wsgi_step_exec(ctx, step);

    ngx_http_wsgi_python_leave();
}


/* the same, for a caller that holds the GIL */

void
ngx_http_wsgi_step_exec(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step)
{
    ngx_log_t  *log;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0, "wsgi step: %d", step);

    /* what the step prints goes to its request's log */

    log = ngx_http_wsgi_step_log;
    ngx_http_wsgi_step_log = ctx->log;

    ngx_http_wsgi_python_switch(ctx->interp);

    ngx_http_wsgi_crash_step(ctx);

    ngx_http_wsgi_step_release(ctx);

    /* out was taken by the nginx side; out_size counts this step's */

    ctx->out_size = 0;
    ctx->step_ts = PyThreadState_Get();

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

    if (ctx->body != NGX_HTTP_WSGI_BODY_ITERATING || ctx->failed
        || step == NGX_HTTP_WSGI_STEP_CLOSE)
    {
        ngx_http_wsgi_step_close(ctx);
        ngx_http_wsgi_log_stream_done(ctx->log);
    }

    ngx_http_wsgi_step_drain(ctx);
    ctx->step_ts = NULL;

    ngx_http_wsgi_step_log = log;
    ngx_http_wsgi_crash_step_done();

    ngx_http_wsgi_forked_check(ctx->log);
}


/*
 * Back from the application: a thread it started that still waits for the
 * event loop for this request is let finish before the step touches the
 * output or body; none may start such a wait until the next call.
 */

static void
ngx_http_wsgi_step_back(ngx_http_wsgi_ctx_t *ctx)
{
    ctx->inside = NGX_HTTP_WSGI_INSIDE_STEP;

    if (ctx->py_waiters) {
        ngx_http_wsgi_step_drain(ctx);
    }
}


static void
ngx_http_wsgi_step_drain(ngx_http_wsgi_ctx_t *ctx)
{
    if (ngx_http_wsgi_forked) {
        /* the threads counted are the parent's: this copy exits */
        ngx_http_wsgi_forked_exit(ctx->log);
    }

    while (ctx->py_waiters) {
        Py_BEGIN_ALLOW_THREADS
        ngx_msleep(1);
        Py_END_ALLOW_THREADS
    }
}


/* a fallback moved the application, and the thread, to main */

static void
ngx_http_wsgi_step_follow(ngx_http_wsgi_ctx_t *ctx)
{
    if (ctx->app->interp != ngx_http_wsgi_interp
        || ctx->interp == ngx_http_wsgi_interp)
    {
        return;
    }

    if (ctx->counted) {
        ctx->counted = 0;
        ngx_http_wsgi_interp_drop(ctx->interp);
    }

    ctx->interp = ngx_http_wsgi_interp;
    ngx_http_wsgi_python_switch(ctx->interp);
}


static ngx_int_t
ngx_http_wsgi_step_call(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject    *app, *environ, *result, *item, *args[2];
    Py_ssize_t   i, n;

    environ = NULL;
    result = NULL;

    ngx_http_wsgi_step_follow(ctx);

    app = ngx_http_wsgi_app_get(ctx->app, ctx->interp, ctx->log);

    ngx_http_wsgi_step_follow(ctx);
    ctx->step_ts = PyThreadState_Get();

    if (ctx->app->retire == 1) {
        ctx->app->retire = 2;
        ctx->retire = 1;
    }

    if (app == NULL) {
        ctx->failed = 1;
        return NGX_ERROR;
    }

    if (ctx->middleware) {
        app = ngx_http_wsgi_middleware_get(ctx, app);
        if (app == NULL) {
            ctx->failed = 1;
            return NGX_ERROR;
        }
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

    ctx->inside = NGX_HTTP_WSGI_INSIDE_CALL;

    args[0] = environ;
    args[1] = ctx->start_response;

    result = PyObject_Vectorcall(app, args, 2, NULL);

    ngx_http_wsgi_step_back(ctx);

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

    if (ctx->write_buffering && !ctx->spool_all) {

        /* what write() held back goes first, now that the app returned */

        ngx_http_wsgi_spool_flush(ctx);

        if (ctx->nout) {
            ctx->committed = 1;
        }
    }

    if (ctx->length < 0
        && !ctx->spool_all
        && (PyList_CheckExact(ctx->iterable)
            || PyTuple_CheckExact(ctx->iterable)))
    {
        /* the whole body is known: its length keeps HTTP/1.0 keep-alive */

        ctx->add_length = ctx->produced;

        n = PySequence_Fast_GET_SIZE(ctx->iterable);

        for (i = 0; i < n; i++) {
            /* borrowed */
            item = PySequence_Fast_GET_ITEM(ctx->iterable, i);

            if (!PyBytes_Check(item)) {
                ctx->add_length = -1;
                break;
            }

            ctx->add_length += PyBytes_GET_SIZE(item);
        }
    }

    if (ctx->started
        && Py_IS_TYPE(ctx->iterable,
                      (PyTypeObject *) ngx_http_wsgi_state()->file_wrapper_type)
        && !ctx->spool_all)
    {
        ngx_http_wsgi_step_file(ctx);

        if (ctx->body == NGX_HTTP_WSGI_BODY_DONE) {
            Py_DECREF(app);
            return NGX_OK;
        }
    }

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


/* nginx sends a real file itself, from its position, up to the length */

static void
ngx_http_wsgi_step_file(ngx_http_wsgi_ctx_t *ctx)
{
    off_t     offset, size;
    ngx_fd_t  fd;

    if (ngx_http_wsgi_file_wrapper_file(ctx->iterable, &fd, &offset, &size)
        != NGX_OK)
    {
        /* not a regular file with fileno(): read it block by block */
        return;
    }

    if (ctx->length >= 0) {
        size = ngx_min(size, ctx->length - ctx->produced);

    } else {
        ctx->add_length = ctx->produced + size;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                   "wsgi file wrapper: fd:%d @%O %O", fd, offset, size);

    ctx->committed = 1;
    ctx->body = NGX_HTTP_WSGI_BODY_DONE;
    ctx->produced += size;

    if (size > 0) {
        ngx_http_wsgi_step_output_file(ctx, fd, offset, size, 0);

    } else {
        (void) close(fd);
    }
}


static void
ngx_http_wsgi_step_iterate(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject    *item;
    Py_ssize_t   i, n;
    uint64_t     start;

    if (ctx->body == NGX_HTTP_WSGI_BODY_DONE) {
        return;
    }

    if (ctx->iterator == NULL) {

        /* a list or a tuple: nothing in it can block */

        n = PySequence_Fast_GET_SIZE(ctx->iterable);

        for (i = 0; i < n && ctx->body != NGX_HTTP_WSGI_BODY_DONE; i++) {
            /* borrowed */
            item = PySequence_Fast_GET_ITEM(ctx->iterable, i);

            if (ngx_http_wsgi_step_chunk(ctx, item, "response body item")
                != NGX_OK)
            {
                ctx->failed = 1;
                return;
            }
        }

        ctx->body = NGX_HTTP_WSGI_BODY_DONE;
        goto done;
    }

    for ( ;; ) {

        /*
         * Output goes to nginx when there is enough, when the headers just
         * became final, and before asking a slow producer for more; held
         * back for multipart ranges, and with output buffering until full.
         */

        if (!ctx->spool_all) {

            if (ctx->out_size >= ctx->bound) {
                return;
            }

            if (ctx->committed && !ctx->first_out
                && !ctx->output_buffering)
            {
                ctx->first_out = 1;
                return;
            }

            if (ctx->nout && ctx->streaming && !ctx->output_buffering) {
                return;
            }
        }

        if (ctx->client_gone) {
            /* nobody reads what would come next */
            ctx->body = NGX_HTTP_WSGI_BODY_ABORTED;
            return;
        }

        start = ngx_http_wsgi_step_clock();

        ctx->inside = NGX_HTTP_WSGI_INSIDE_APP;
        item = PyIter_Next(ctx->iterator);
        ngx_http_wsgi_step_back(ctx);

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

            ctx->body = NGX_HTTP_WSGI_BODY_DONE;
            goto done;
        }

        if (ngx_http_wsgi_step_chunk(ctx, item, "response body item")
            != NGX_OK)
        {
            Py_DECREF(item);
            ctx->failed = 1;
            return;
        }

        Py_DECREF(item);

        if (ctx->body == NGX_HTTP_WSGI_BODY_DONE) {
            goto done;
        }
    }

done:

    if (ctx->spool_all) {

        /* the whole body is known: one buffer, and its length */

        if (ctx->length < 0) {
            ctx->add_length = ctx->produced;

        } else if (ctx->produced < ctx->length) {

            /* nginx would cut ranges out of bytes that do not exist */

            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: application \"%s\" produced %O bytes of "
                          "its Content-Length of %O", ctx->app->path.data,
                          ctx->produced, ctx->length);
            ctx->failed = 1;
            return;
        }

        ctx->committed = 1;
        ngx_http_wsgi_spool_flush(ctx);
    }
}


/* exact bytes are kept; other bytes-like objects may change: copied */

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

        /*
         * PEP 3333: headers wait for a non-empty item, so an exception still
         * gets a 500; wsgi_optimize_send_headers sends them on an empty one.
         */

        if (ctx->optimize_send_headers
            && ctx->started && ctx->inside != NGX_HTTP_WSGI_INSIDE_CALL
            && !ctx->spool_all)
        {
            ctx->committed = 1;
        }

        return NGX_OK;
    }

    if (!ctx->started) {
        Py_DECREF(bytes);
        PyErr_Format(PyExc_RuntimeError, "%s produced before "
                     "start_response() was called", what);
        goto failed;
    }

    if (!ctx->spool_all
        && !(ctx->write_buffering && ctx->inside == NGX_HTTP_WSGI_INSIDE_CALL))
    {
        ctx->committed = 1;
    }

    if (ctx->length >= 0 && ctx->produced + (off_t) size >= ctx->length) {

        /* the application's Content-Length is what the client gets */

        if (ctx->produced + (off_t) size > ctx->length) {
            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: application \"%s\" produced more than its "
                          "Content-Length of %O bytes, the rest is dropped",
                          ctx->app->path.data, ctx->length);
        }

        size = (size_t) (ctx->length - ctx->produced);

        /* write() from close() of a COMPLETE body keeps it closed */

        if (ctx->body == NGX_HTTP_WSGI_BODY_ITERATING) {
            ctx->body = NGX_HTTP_WSGI_BODY_DONE;
        }
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


static void
ngx_http_wsgi_step_output(ngx_http_wsgi_ctx_t *ctx, PyObject *obj,
    u_char *data, size_t size)
{
    size_t                  small, cap;
    PyObject               *buf;
    ngx_http_wsgi_chunk_t  *out;

    ctx->produced += size;

    if (ctx->spool_all
        || (ctx->write_buffering && ctx->inside == NGX_HTTP_WSGI_INSIDE_CALL))
    {
        ngx_http_wsgi_spool_add(ctx, data, size);
        return;
    }

    /*
     * Small chunks in a row are copied into a buffer of our own, so tiny
     * strings do not cost a buffer and an iovec each; with output
     * buffering, every chunk under wsgi_buffer_size is small.
     */

    if (ctx->output_buffering) {
        small = ctx->bound - 1;
        cap = ctx->bound;

    } else {
        small = NGX_HTTP_WSGI_SMALL;
        cap = NGX_HTTP_WSGI_COALESCE;
    }

    if (size <= small && ctx->nout) {
        out = &ctx->out[ctx->nout - 1];

        if (out->fd == NGX_INVALID_FILE
            && out->size <= small
            && out->size + size <= cap)
        {
            if (!out->coalesce) {

                buf = PyBytes_FromStringAndSize(NULL, cap);
                if (buf == NULL) {
                    PyErr_Clear();
                    ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                                  "wsgi: out of memory for a response "
                                  "chunk");
                    ctx->failed = 1;
                    return;
                }

                ngx_memcpy(PyBytes_AS_STRING(buf), out->data, out->size);

                Py_SETREF(out->obj, buf);
                out->data = (u_char *) PyBytes_AS_STRING(buf);
                out->coalesce = 1;
            }

            ngx_memcpy(out->data + out->size, data, size);
            out->size += size;
            ctx->out_size += size;
            return;
        }
    }

    (void) ngx_http_wsgi_step_chunk_add(ctx, obj, data, size);
}


/* a new chunk of memory that obj keeps alive */

ngx_http_wsgi_chunk_t *
ngx_http_wsgi_step_chunk_add(ngx_http_wsgi_ctx_t *ctx, PyObject *obj,
    u_char *data, size_t size)
{
    ngx_uint_t              n;
    ngx_http_wsgi_chunk_t  *out;

    if (ctx->out == NULL) {

        /* most steps produce a chunk or two */

        ctx->out = ctx->out_first;
        ctx->nalloc = NGX_HTTP_WSGI_OUT_FIRST;
    }

    if (ctx->nout == ctx->nalloc) {
        n = ctx->nalloc * 2;

        if (ctx->out == ctx->out_first) {
            out = PyMem_RawMalloc(n * sizeof(ngx_http_wsgi_chunk_t));
            if (out) {
                ngx_memcpy(out, ctx->out_first,
                           sizeof(ngx_http_wsgi_chunk_t) * ctx->nout);
            }

        } else {
            out = PyMem_RawRealloc(ctx->out,
                                   n * sizeof(ngx_http_wsgi_chunk_t));
        }

        if (out == NULL) {
            /* the chunk is lost: fail the response rather than corrupt it */
            ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                          "wsgi: out of memory for a response chunk");
            ctx->failed = 1;
            return NULL;
        }

        ctx->out = out;
        ctx->nalloc = n;
    }

    out = &ctx->out[ctx->nout++];

    out->obj = obj ? Py_NewRef(obj) : NULL;
    out->data = data;
    out->size = size;
    out->fd = NGX_INVALID_FILE;
    out->offset = 0;
    out->coalesce = 0;
    out->temp = 0;

    ctx->out_size += size;

    return out;
}


/* a range of an open file; the chunk owns fd */

void
ngx_http_wsgi_step_output_file(ngx_http_wsgi_ctx_t *ctx, ngx_fd_t fd,
    off_t offset, off_t size, ngx_uint_t temp)
{
    ngx_http_wsgi_chunk_t  *out;

    out = ngx_http_wsgi_step_chunk_add(ctx, NULL, NULL, (size_t) size);

    if (out == NULL) {
        (void) close(fd);
        return;
    }

    out->fd = fd;
    out->offset = offset;
    out->temp = temp;
}


/* an exception in close() is logged and changes nothing else */

static void
ngx_http_wsgi_step_close(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject  *close, *rv;

    if (ngx_http_wsgi_closed(ctx)) {
        return;
    }

    if (ctx->failed) {
        ctx->body = NGX_HTTP_WSGI_BODY_FAILED;

    } else if (ctx->body == NGX_HTTP_WSGI_BODY_DONE) {
        ctx->body = NGX_HTTP_WSGI_BODY_COMPLETE;

    } else {
        ctx->body = NGX_HTTP_WSGI_BODY_STOPPED;
    }

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
            }

        } else {
            ctx->inside = NGX_HTTP_WSGI_INSIDE_APP;
            rv = PyObject_CallNoArgs(close);
            ngx_http_wsgi_step_back(ctx);

            Py_DECREF(close);

            if (rv == NULL) {
                ngx_http_wsgi_log_exception(ctx->log, "close() of \"%s\" "
                                            "raised an exception",
                                            ctx->app->path.data);
            }

            Py_XDECREF(rv);
        }
    }

    Py_CLEAR(ctx->iterator);
    Py_CLEAR(ctx->iterable);

    ngx_http_wsgi_step_drain(ctx);

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

    /* a body still held back failed or was stopped: nobody will send it */

    if (ctx->spool || ctx->spool_fd != NGX_INVALID_FILE) {
        ngx_http_wsgi_spool_discard(ctx);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->log, 0, "wsgi closed");
}


/*
 * The one release path of pins.  The nginx side may not hold the GIL where
 * it lets bytes go, so it moves their pins to ctx->release (then to a list
 * that outlives the request pool); only threads holding the GIL call this.
 * An object goes in its own interpreter: lists of several interpreters'
 * pins have a tagged interpreter pointer before each one's.  Another tag
 * ends a request's last pins: it is done with its interpreter.
 */

void
ngx_http_wsgi_release(PyObject **objs, ngx_uint_t n)
{
    ngx_uint_t               i;
    ngx_http_wsgi_interp_t  *interp;

    for (i = 0; i < n; i++) {
        if ((uintptr_t) objs[i] & NGX_HTTP_WSGI_TAGS) {
            interp = (ngx_http_wsgi_interp_t *)
                         ((uintptr_t) objs[i] & ~NGX_HTTP_WSGI_TAGS);

            if ((uintptr_t) objs[i] & NGX_HTTP_WSGI_TAG_INTERP) {
                ngx_http_wsgi_python_switch(interp);

            } else {
                ngx_http_wsgi_interp_drop(interp);
            }

            continue;
        }

        Py_DECREF(objs[i]);
    }
}


/*
 * Where lists of several interpreters' pins meet: the tag before each
 * run of one interpreter's; a->interp is the last run's, what a release
 * of the list enters.
 */

ngx_int_t
ngx_http_wsgi_objs_interp(ngx_http_wsgi_objs_t *a,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log)
{
    PyObject  *tag;

    if (a->nelts && a->interp == interp) {
        return NGX_OK;
    }

    if (ngx_http_wsgi_ninterps > 1) {
        tag = (PyObject *) ((uintptr_t) interp | NGX_HTTP_WSGI_TAG_INTERP);

        if (ngx_http_wsgi_objs_add(a, &tag, 1, log) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    a->interp = interp;

    return NGX_OK;
}


static void
ngx_http_wsgi_step_release(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_http_wsgi_release(ctx->release.elts, ctx->release.nelts);
    ctx->release.nelts = 0;
}


void
ngx_http_wsgi_step_release_objs(ngx_http_wsgi_interp_t *interp,
    PyObject **objs, ngx_uint_t n)
{
    ngx_http_wsgi_python_enter(interp);

    ngx_http_wsgi_release(objs, n);

    ngx_http_wsgi_forked_check(ngx_cycle->log);

    ngx_http_wsgi_python_leave();
}


/* every pin the nginx side still had is in ctx->release by now */

void
ngx_http_wsgi_step_cleanup(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_log_t   *log;
    ngx_uint_t   i;

    ngx_http_wsgi_python_enter(ctx->interp);

    log = ngx_http_wsgi_step_log;
    ngx_http_wsgi_step_log = ctx->log;

    ctx->step_ts = PyThreadState_Get();
    ngx_http_wsgi_step_close(ctx);
    ctx->step_ts = NULL;

    ngx_http_wsgi_step_release(ctx);

    for (i = 0; i < ctx->nout; i++) {
        Py_XDECREF(ctx->out[i].obj);

        if (ctx->out[i].fd != NGX_INVALID_FILE) {
            (void) close(ctx->out[i].fd);
        }
    }

    ctx->nout = 0;

    Py_CLEAR(ctx->status);
    Py_CLEAR(ctx->headers);
    Py_CLEAR(ctx->spool);

    if (ctx->spool_fd != NGX_INVALID_FILE) {
        (void) close(ctx->spool_fd);
        ctx->spool_fd = NGX_INVALID_FILE;
    }

    ngx_http_wsgi_log_stream_done(ctx->log);
    ngx_http_wsgi_step_log = log;

    ngx_http_wsgi_forked_check(ctx->log);

    /* the last the request does in its interpreter */

    if (ctx->counted) {
        ctx->counted = 0;
        ngx_http_wsgi_interp_drop(ctx->interp);
    }

    ngx_http_wsgi_python_leave();

    if (ctx->out != ctx->out_first) {
        PyMem_RawFree(ctx->out);
    }

    ctx->out = NULL;
    ctx->nalloc = 0;
}


/* a forked process back from the app runs and releases nothing of the worker */

void
ngx_http_wsgi_forked_exit(ngx_log_t *log)
{
    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "wsgi: process %P forked by the application returned "
                  "into the server, exiting; a child process must end "
                  "with os._exit() or exec()", getpid());

    _exit(1);
}


static uint64_t
ngx_http_wsgi_step_clock(void)
{
    struct timespec  ts;

    /* microseconds; ngx_current_msec is not updated off the event loop */

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
