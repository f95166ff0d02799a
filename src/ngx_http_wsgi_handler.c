
/*
 * nginx mod_wsgi: the content handler.  Snapshots the request, runs steps
 * and has output.c send their output.  A request is finalized in
 * ngx_http_wsgi_body_handler() when it cannot be set up, otherwise only in
 * ngx_http_wsgi_finish().
 */


#include "ngx_http_wsgi_module.h"


static void ngx_http_wsgi_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_wsgi_create_ctx(ngx_http_request_t *r,
    ngx_http_wsgi_ctx_t **ctxp);
static void ngx_http_wsgi_run(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e step);
static ngx_int_t ngx_http_wsgi_process(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e *step);
static ngx_int_t ngx_http_wsgi_failed(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e *step);
static ngx_int_t ngx_http_wsgi_finish(ngx_http_wsgi_ctx_t *ctx,
    ngx_int_t rc, ngx_http_wsgi_step_e *step);
static ngx_int_t ngx_http_wsgi_wait(ngx_http_wsgi_ctx_t *ctx);
static void ngx_http_wsgi_write_handler(ngx_http_request_t *r);
static void ngx_http_wsgi_read_handler(ngx_http_request_t *r);
static void ngx_http_wsgi_abort(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_wsgi_cleanup(void *data);


ngx_int_t
ngx_http_wsgi_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_wsgi_loc_conf_t  *wlcf;

    if (ngx_http_wsgi_interp == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: Python is not available in this worker, "
                      "see the log of its start");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wsgi_module);

    rc = ngx_http_wsgi_crash_check(r, wlcf->app);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!wlcf->request_buffering) {
        r->request_body_no_buffering = 1;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_wsgi_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_wsgi_body_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_http_wsgi_ctx_t  *ctx;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi body read");

    rc = ngx_http_wsgi_create_ctx(r, &ctx);

    if (rc != NGX_OK) {
        /* nothing has run: the request ends here */
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* a client that goes away is noticed while the application runs */

    r->read_event_handler = ngx_http_wsgi_read_handler;

    ngx_http_wsgi_run(ctx, NGX_HTTP_WSGI_STEP_CALL);
}


static ngx_int_t
ngx_http_wsgi_create_ctx(ngx_http_request_t *r, ngx_http_wsgi_ctx_t **ctxp)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_wsgi_ctx_t       *ctx;
    ngx_http_wsgi_loc_conf_t  *wlcf;

    if (r->connection->error) {
        return NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wsgi_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_wsgi_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ctx->phase = NGX_HTTP_WSGI_PHASE_LOOP;
     *     ctx->body = NGX_HTTP_WSGI_BODY_ITERATING;
     *     ...
     */

    ngx_http_wsgi_app_check(wlcf->app, r->connection->log);

    ctx->request = r;
    ctx->app = wlcf->app;
    ctx->middleware = wlcf->middleware;
    ctx->log = r->connection->log;
    ctx->bound = wlcf->buffer_size;
    ctx->length = -1;
    ctx->thread_pool = wlcf->thread_pool;
    ctx->max_queue = (ngx_uint_t) wlcf->max_queue;
    ctx->add_length = -1;
    ctx->spool_fd = NGX_INVALID_FILE;
    ctx->output_buffering = wlcf->output_buffering;
    ctx->optimize_send_headers = wlcf->optimize_send_headers;
    ctx->write_buffering = wlcf->write_buffering;
    ctx->spool_max = wlcf->write_buffer_size;
    ctx->temp_dir = wlcf->temp_path->name.data;

    /* nginx answers several ranges only from a body in one buffer */

    if (wlcf->allow_ranges
        && r->headers_in.range
        && ngx_strlchr(r->headers_in.range->value.data,
                       r->headers_in.range->value.data
                       + r->headers_in.range->value.len, ',')
           != NULL)
    {
        ctx->spool_all = 1;
        ctx->spool_max = ngx_max(wlcf->buffer_size, wlcf->write_buffer_size);
    }
    ctx->snap.multithread = (wlcf->thread_pool != NULL);

    /* inline peeks at the socket; a pool thread must not: fds get reused */

    ctx->snap.fd = (wlcf->thread_pool == NULL) ? r->connection->fd : -1;

#if (NGX_HTTP_V2)
    if (r->stream) {
        ctx->snap.fd = -1;
    }
#endif

    if (ngx_array_init(&ctx->release, r->pool, 8, sizeof(PyObject *))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->in_last = &ctx->in;
    ctx->in_state = NGX_OK;

    if (r->reading_body) {

        /* wsgi_request_buffering off, and the body is still coming */

        ctx->streaming_input = 1;
        ctx->in_state = NGX_AGAIN;

        if (ngx_http_wsgi_body_read(ctx, 0) == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_wsgi_snapshot(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_wsgi_cleanup;
    cln->data = ctx;

    /* the group's; the call step, under the GIL, follows a fallback */
    ctx->interp = ngx_http_wsgi_interp_take(ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_wsgi_module);

    *ctxp = ctx;

    return NGX_OK;
}


/* inline mode: the event loop runs each step itself */

static void
ngx_http_wsgi_run(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step)
{
    ngx_int_t            rc;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ctx->request;

    for ( ;; ) {

        if (ctx->thread_pool) {
            rc = ngx_http_wsgi_thread_queue(ctx, step, ctx->max_queue);

            if (rc == NGX_OK) {
                return;
            }

            if (step == NGX_HTTP_WSGI_STEP_CALL) {

                /* nothing has run yet: the client may come back later */

                ctx->body = NGX_HTTP_WSGI_BODY_STOPPED;

                if (rc == NGX_DECLINED) {
                    h = ngx_list_push(&r->headers_out.headers);
                    if (h != NULL) {
                        h->hash = 1;
                        ngx_str_set(&h->key, "Retry-After");
                        ngx_str_set(&h->value, "1");
                        h->lowcase_key = NULL;
                    }

                    rc = NGX_HTTP_SERVICE_UNAVAILABLE;

                } else {
                    rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                (void) ngx_http_wsgi_finish(ctx, rc, &step);
                return;
            }

            /* the scheduler could not be allocated */

            if (step == NGX_HTTP_WSGI_STEP_CLOSE) {

                /* close() is never skipped */

                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "wsgi: cannot queue the close of \"%s\", "
                              "closing on the event loop",
                              ctx->app->path.data);

                ngx_http_wsgi_step_run(ctx, step);

            } else {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "wsgi: cannot queue a step of \"%s\", "
                              "the response is cut", ctx->app->path.data);

                if (ngx_http_wsgi_finish(ctx, NGX_ERROR, &step) != NGX_AGAIN)
                {
                    return;
                }

                continue;
            }

        } else {
            ngx_http_wsgi_hold_gil();
            ngx_http_wsgi_step_run(ctx, step);
            ngx_http_wsgi_accept_after();
        }

        if (ngx_http_wsgi_process(ctx, &step) != NGX_AGAIN) {
            return;
        }
    }
}


void
ngx_http_wsgi_step_complete(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_http_wsgi_step_e  step;

    if (ngx_http_wsgi_process(ctx, &step) == NGX_AGAIN) {
        ngx_http_wsgi_run(ctx, step);
    }
}


/* NGX_AGAIN with the next step, or NGX_DONE: waiting or finalized */

static ngx_int_t
ngx_http_wsgi_process(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e *step)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->finishing) {
        ngx_http_wsgi_discard_output(ctx);
        return ngx_http_wsgi_finish(ctx, ctx->final_rc, step);
    }

    if (ctx->client_gone) {
        ngx_http_wsgi_discard_output(ctx);
        return ngx_http_wsgi_finish(ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST, step);
    }

    if (ctx->failed) {
        return ngx_http_wsgi_failed(ctx, step);
    }

    if (!ctx->header_sent) {

        if (!ctx->committed && !ngx_http_wsgi_done(ctx)) {
            *step = NGX_HTTP_WSGI_STEP_ITERATE;
            return NGX_AGAIN;
        }

        if (!ctx->started) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "wsgi: application \"%s\" returned without "
                          "calling start_response()", ctx->app->path.data);
            ngx_http_wsgi_discard_output(ctx);
            return ngx_http_wsgi_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        step);
        }

        rc = ngx_http_wsgi_send_header(ctx);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_wsgi_discard_output(ctx);
            return ngx_http_wsgi_finish(ctx, rc, step);
        }

        if (ctx->header_only && !ngx_http_wsgi_done(ctx)
            && ctx->optimize_send_headers)
        {

            /* HEAD, 204, 304: nobody needs the rest of the body */

            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "wsgi header only, iteration stopped");

            ngx_http_wsgi_discard_output(ctx);
            return ngx_http_wsgi_finish(ctx, NGX_OK, step);
        }
    }

    if (ngx_http_wsgi_done(ctx) && !ctx->header_only && ctx->length >= 0
        && ctx->produced < ctx->length)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: application \"%s\" produced %O bytes of its "
                      "Content-Length of %O, closing the connection",
                      ctx->app->path.data, ctx->produced, ctx->length);
        r->keepalive = 0;
    }

    rc = ngx_http_wsgi_send_body(ctx, ngx_http_wsgi_done(ctx));

    if (rc == NGX_ERROR) {
        return ngx_http_wsgi_finish(ctx, NGX_ERROR, step);
    }

    if (ngx_http_wsgi_done(ctx)) {
        /* closed by the step; what is still buffered nginx sends itself */
        return ngx_http_wsgi_finish(ctx, rc, step);
    }

    if (rc == NGX_AGAIN) {
        if (ngx_http_wsgi_wait(ctx) != NGX_OK) {
            return ngx_http_wsgi_finish(ctx, NGX_ERROR, step);
        }

        return NGX_DONE;
    }

    *step = NGX_HTTP_WSGI_STEP_ITERATE;

    return NGX_AGAIN;
}


/* a 500 before the headers are final; after, the connection is cut */

static ngx_int_t
ngx_http_wsgi_failed(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e *step)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (!ctx->committed || !ctx->started) {
        ngx_http_wsgi_discard_output(ctx);

        return ngx_http_wsgi_finish(ctx, ctx->header_sent
                                         ? NGX_ERROR
                                         : NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    step);
    }

    if (!ctx->header_sent) {
        rc = ngx_http_wsgi_send_header(ctx);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_wsgi_discard_output(ctx);
            return ngx_http_wsgi_finish(ctx, rc, step);
        }
    }

    rc = ngx_http_wsgi_send_body(ctx, 0);

    if (rc == NGX_OK && (ctx->busy || r->buffered || r->connection->buffered))
    {
        rc = NGX_AGAIN;
    }

    if (rc == NGX_AGAIN && ngx_http_wsgi_wait(ctx) == NGX_OK) {
        /* the write handler cuts it once it is sent */
        return NGX_DONE;
    }

    return ngx_http_wsgi_finish(ctx, NGX_ERROR, step);
}


/* the one place a request that reached the application is finalized */

static ngx_int_t
ngx_http_wsgi_finish(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc,
    ngx_http_wsgi_step_e *step)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0, "wsgi finish: %i", rc);

    if (ctx->retire) {
        /* "wsgi_reload_mechanism process": as on "nginx -s quit" */
        ngx_quit = 1;
    }

    if (ngx_http_wsgi_closed(ctx)) {
        ngx_http_finalize_request(ctx->request, rc);
        return NGX_DONE;
    }

    ctx->finishing = 1;
    ctx->final_rc = rc;

    *step = NGX_HTTP_WSGI_STEP_CLOSE;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_wsgi_wait(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_event_t               *wev;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ctx->request;
    wev = r->connection->write;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi wait for client");

    r->write_event_handler = ngx_http_wsgi_write_handler;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_wsgi_write_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_wsgi_ctx_t       *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_get_module_ctx(r, ngx_http_wsgi_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "wsgi write handler");

    if (ctx == NULL) {
        /* a filter finalized the request (412) and reset its contexts */
        return;
    }

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;

        ngx_http_wsgi_abort(ctx, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_wsgi_abort(ctx, NGX_ERROR);
        }

        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    ngx_http_wsgi_update_busy(ctx);

    if (rc == NGX_ERROR) {
        ngx_http_wsgi_abort(ctx, NGX_ERROR);
        return;
    }

    if (rc == NGX_AGAIN || ctx->busy || r->buffered || c->buffered) {
        if (ngx_http_wsgi_wait(ctx) != NGX_OK) {
            ngx_http_wsgi_abort(ctx, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->phase == NGX_HTTP_WSGI_PHASE_FLUSH) {
        /* the write() that waited for this returns */
        ctx->phase = NGX_HTTP_WSGI_PHASE_THREAD;
        ngx_http_wsgi_thread_signal(ctx, NGX_OK);
        return;
    }

    if (ctx->failed) {
        /* what a failed application produced is out: the cut */
        ngx_http_wsgi_abort(ctx, NGX_ERROR);
        return;
    }

    ngx_http_wsgi_run(ctx, NGX_HTTP_WSGI_STEP_ITERATE);
}


/* a write() waiting on a thread fails, otherwise the response ends here */

static void
ngx_http_wsgi_abort(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_request_t    *r;
    ngx_http_wsgi_step_e   step;

    r = ctx->request;

    r->write_event_handler = ngx_http_request_empty_handler;

    if (r->connection->write->timer_set) {
        ngx_del_timer(r->connection->write);
    }

    if (ctx->phase == NGX_HTTP_WSGI_PHASE_FLUSH) {
        /* the step fails in write() and comes back by itself */
        ctx->phase = NGX_HTTP_WSGI_PHASE_THREAD;
        ngx_http_wsgi_thread_signal(ctx, NGX_ERROR);
        return;
    }

    if (ctx->phase != NGX_HTTP_WSGI_PHASE_LOOP) {
        /* the step sees client_gone when it is back */
        return;
    }

    if (ngx_http_wsgi_finish(ctx, rc, &step) == NGX_AGAIN) {
        ngx_http_wsgi_run(ctx, step);
    }
}


/* write() on a pool: the waiting thread goes on once this is sent */

void
ngx_http_wsgi_flush(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->pull) {

        /* wsgi.input waits for more of the body */

        rc = ngx_http_wsgi_body_read(ctx, 1);

        if (rc == NGX_AGAIN) {
            ctx->phase = NGX_HTTP_WSGI_PHASE_PULL;
            return;
        }

        ngx_http_wsgi_thread_signal(ctx, rc);
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi flush");

    if (ctx->client_gone || r->connection->error) {
        ngx_http_wsgi_thread_signal(ctx, NGX_ERROR);
        return;
    }

    if (!ctx->header_sent) {
        rc = ngx_http_wsgi_send_header(ctx);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_wsgi_discard_output(ctx);
            ngx_http_wsgi_thread_signal(ctx, NGX_ERROR);
            return;
        }
    }

    rc = ngx_http_wsgi_send_body(ctx, 0);

    if (rc == NGX_AGAIN) {
        ctx->phase = NGX_HTTP_WSGI_PHASE_FLUSH;

        if (ngx_http_wsgi_wait(ctx) == NGX_OK) {
            return;
        }

        ctx->phase = NGX_HTTP_WSGI_PHASE_THREAD;
        rc = NGX_ERROR;
    }

    ngx_http_wsgi_thread_signal(ctx, rc == NGX_ERROR ? NGX_ERROR : NGX_OK);
}


static void
ngx_http_wsgi_read_handler(ngx_http_request_t *r)
{
    int                   n;
    char                  buf[1];
    ngx_int_t             rc;
    ngx_err_t             err;
    ngx_event_t          *rev;
    ngx_connection_t     *c;
    ngx_http_wsgi_ctx_t  *ctx;

    c = r->connection;
    rev = c->read;
    ctx = ngx_http_get_module_ctx(r, ngx_http_wsgi_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "wsgi read handler");

    if (ctx == NULL || ctx->client_gone) {
        return;
    }

    if (ctx->phase == NGX_HTTP_WSGI_PHASE_PULL) {
        rc = ngx_http_wsgi_body_read(ctx, 1);

        if (rc != NGX_AGAIN) {
            ctx->phase = NGX_HTTP_WSGI_PHASE_THREAD;
            ngx_http_wsgi_thread_signal(ctx, rc);
        }

        return;
    }

    if (r->reading_body) {
        /* the body waits for the application to ask for it */
        goto block;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        if (!c->error) {
            return;
        }

        err = 0;
        goto closed;
    }
#endif

#if (NGX_HAVE_EPOLLRDHUP)

    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup) {
        socklen_t  len;

        if (!rev->pending_eof) {
            return;
        }

        rev->eof = 1;

        err = 0;
        len = sizeof(ngx_err_t);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        goto closed;
    }

#endif

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == 0) {
        rev->eof = 1;
        err = 0;
        goto closed;
    }

    if (n == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EAGAIN) {
            rev->eof = 1;
            rev->error = 1;
            goto closed;
        }
    }

    /* pipelined data is not a reason to stop */

block:

    if ((ngx_event_flags & NGX_USE_LEVEL_EVENT) && rev->active) {
        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_http_wsgi_abort(ctx, NGX_ERROR);
        }
    }

    return;

closed:

    ngx_log_error(NGX_LOG_INFO, c->log, err,
                  "client prematurely closed connection");

    c->error = 1;
    ctx->client_gone = 1;

    ngx_http_wsgi_abort(ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST);
}


static void
ngx_http_wsgi_cleanup(void *data)
{
    ngx_http_wsgi_ctx_t *ctx = data;

    PyObject            **pin;
    ngx_chain_t          *cl;
    ngx_http_wsgi_buf_t  *wb;

    ngx_http_wsgi_body_free(ctx);

    if (ngx_http_wsgi_interp == NULL) {
        return;
    }

    /* whatever nginx did not send holds its bytes no longer */

    for (cl = ctx->busy; cl; cl = cl->next) {
        wb = (ngx_http_wsgi_buf_t *) cl->buf;

        if (wb->obj) {
            pin = ngx_array_push(&ctx->release);
            if (pin == NULL) {
                continue;
            }

            *pin = wb->obj;
            wb->obj = NULL;
        }
    }

    ctx->busy = NULL;

    if (!ngx_http_wsgi_closed(ctx)) {

        /* terminated from outside, without its close step */

        ngx_http_wsgi_step_cleanup(ctx);
        return;
    }

    /* the pool's memory is going: the list is released from a copy */

    ngx_http_wsgi_discard_output(ctx);

    if (ctx->status) {
        pin = ngx_array_push(&ctx->release);
        if (pin) {
            *pin = ctx->status;
            ctx->status = NULL;
        }
    }

    if (ctx->headers) {
        pin = ngx_array_push(&ctx->release);
        if (pin) {
            *pin = ctx->headers;
            ctx->headers = NULL;
        }
    }

    if (ctx->nout || ctx->status || ctx->headers) {
        /* out of memory: release on the event loop */
        ngx_http_wsgi_step_cleanup(ctx);
        return;
    }

    if (ctx->counted) {

        /* after its pins, the request is done with its interpreter */

        pin = ngx_array_push(&ctx->release);
        if (pin == NULL) {
            ngx_http_wsgi_step_cleanup(ctx);
            return;
        }

        *pin = (PyObject *) ((uintptr_t) ctx->interp
                             | NGX_HTTP_WSGI_TAG_DONE);
    }

    if (ctx->thread_pool) {
        ngx_http_wsgi_thread_release(ctx->thread_pool, ctx->interp,
                                     ctx->release.elts, ctx->release.nelts,
                                     ctx->log);

    } else if (ngx_http_wsgi_defer(ctx->interp, ctx->release.elts,
                                   ctx->release.nelts)
               != NGX_OK)
    {
        /* the cleanup's own drop is the last it does in the interpreter */

        if (ctx->counted) {
            ctx->release.nelts--;
        }

        ngx_http_wsgi_step_cleanup(ctx);
        return;
    }

    ctx->counted = 0;
    ctx->release.nelts = 0;

    if (ctx->out != ctx->out_first) {
        PyMem_RawFree(ctx->out);
    }

    ctx->out = NULL;
}
