
/*
 * nginx mod_wsgi: the request body streamed to wsgi.input, nginx side.
 * With wsgi_request_buffering off, what arrives is copied into ctx->in when
 * the application asks for more: on the event loop for a pool thread, or
 * inline, in a poll() of the client's socket.
 */


#include "ngx_http_wsgi_module.h"

#include <poll.h>


/* read unset: only what nginx has read; NGX_ERROR: logged, OSError */

ngx_int_t
ngx_http_wsgi_body_read(ngx_http_wsgi_ctx_t *ctx, ngx_uint_t read)
{
    size_t                    size;
    ngx_int_t                 rc;
    ngx_uint_t                got;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_request_t       *r;
    ngx_http_wsgi_in_t       *in;
    ngx_http_request_body_t  *rb;

    r = ctx->request;
    rb = r->request_body;

    if (ctx->in_state != NGX_AGAIN) {
        return ctx->in_state;
    }

    rc = NGX_OK;

    if (read && r->reading_body) {
        rc = ngx_http_read_unbuffered_request_body(r);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE || rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "wsgi: reading the request body failed: %i", rc);
        ctx->in_state = NGX_ERROR;
        return NGX_ERROR;
    }

    got = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;
        size = b->last - b->pos;

        if (size == 0) {
            continue;
        }

        /* nginx reuses its buffer: the data is copied out */

        in = ngx_alloc(offsetof(ngx_http_wsgi_in_t, data) + size,
                       r->connection->log);
        if (in == NULL) {
            ctx->in_state = NGX_ERROR;
            return NGX_ERROR;
        }

        in->next = NULL;
        in->size = size;
        in->pos = 0;
        ngx_memcpy(in->data, b->pos, size);

        *ctx->in_last = in;
        ctx->in_last = &in->next;

        b->pos = b->last;
        got = 1;
    }

    rb->bufs = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi input streamed: %ui, reading: %d",
                   got, r->reading_body);

    if (!r->reading_body) {
        ctx->in_state = NGX_OK;
        return NGX_OK;
    }

    return got ? NGX_OK : NGX_AGAIN;
}


/* inline: wsgi.input waits on the event loop's thread, without the GIL */

ngx_int_t
ngx_http_wsgi_body_pull(ngx_http_wsgi_ctx_t *ctx)
{
    int                        n;
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    struct pollfd              pfd;
    ngx_http_core_loc_conf_t  *clcf;

    c = ctx->request->connection;
    clcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_core_module);

    if (ngx_http_wsgi_forked) {
        /* the connection is the parent's */
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "wsgi: wsgi.input used in a process forked by the "
                      "application");
        return NGX_ERROR;
    }

    for ( ;; ) {
        rc = ngx_http_wsgi_body_read(ctx, 1);

        if (rc != NGX_AGAIN) {
            return rc;
        }

        pfd.fd = c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;

        n = poll(&pfd, 1, (int) clcf->client_body_timeout);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        if (n <= 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, n ? ngx_errno : NGX_ETIMEDOUT,
                          "wsgi: client timed out sending the request body");
            ctx->in_state = NGX_ERROR;
            return NGX_ERROR;
        }

        /* the event loop would have said so */

        c->read->ready = 1;
        c->read->available = -1;
    }
}


void
ngx_http_wsgi_body_free(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_http_wsgi_in_t  *in, *next;

    for (in = ctx->in; in; in = next) {
        next = in->next;
        ngx_free(in);
    }

    ctx->in = NULL;
    ctx->in_last = &ctx->in;
}
