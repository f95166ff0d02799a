
/*
 * nginx mod_wsgi: a step's body output as nginx output: buffers that point
 * at the bytes objects (or files) of its chunks, pinned until sent.
 */


#include "ngx_http_wsgi_module.h"


static ngx_int_t ngx_http_wsgi_send_file(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_chunk_t *chunk, ngx_buf_t *b);
static ngx_int_t ngx_http_wsgi_close_file(ngx_http_request_t *r,
    ngx_fd_t fd);


ngx_int_t
ngx_http_wsgi_send_body(ngx_http_wsgi_ctx_t *ctx, ngx_uint_t last)
{
    ngx_int_t               rc;
    ngx_uint_t              i;
    ngx_buf_t              *b;
    ngx_chain_t            *cl, *out, **ll;
    ngx_http_request_t     *r;
    ngx_http_wsgi_buf_t    *wb;
    ngx_http_wsgi_chunk_t  *chunk;

    r = ctx->request;

    if (ctx->header_only) {
        ngx_http_wsgi_discard_output(ctx);
        return NGX_OK;
    }

    b = NULL;
    out = NULL;
    ll = &out;

    for (i = 0; i < ctx->nout; i++) {
        chunk = &ctx->out[i];

        if (ctx->free) {
            cl = ctx->free;
            ctx->free = cl->next;
            wb = (ngx_http_wsgi_buf_t *) cl->buf;

        } else {
            cl = ngx_alloc_chain_link(r->pool);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            wb = ngx_palloc(r->pool, sizeof(ngx_http_wsgi_buf_t));
            if (wb == NULL) {
                return NGX_ERROR;
            }

            cl->buf = &wb->buf;
        }

        b = &wb->buf;
        ngx_memzero(b, sizeof(ngx_buf_t));

        b->tag = (ngx_buf_tag_t) &ngx_http_wsgi_module;

        if (chunk->fd != NGX_INVALID_FILE) {
            if (ngx_http_wsgi_send_file(ctx, chunk, b) != NGX_OK) {
                return NGX_ERROR;
            }

        } else {
            b->memory = 1;
            b->pos = chunk->data;
            b->last = chunk->data + chunk->size;
            b->start = b->pos;
            b->end = b->last;
        }

        /* the pin moves from the step's output to the buffer */

        wb->obj = chunk->obj;
        chunk->obj = NULL;

        ctx->sent += chunk->size;

        *ll = cl;
        ll = &cl->next;
    }

    ctx->nout = 0;

    if (out == NULL && !last) {
        return NGX_OK;
    }

    if (out == NULL) {
        rc = ngx_http_send_special(r, NGX_HTTP_LAST);
        ngx_http_wsgi_update_busy(ctx);
        return rc;
    }

    *ll = NULL;

    if (last && r == r->main) {
        b->last_buf = 1;

    } else if (last) {
        b->last_in_chain = 1;

    } else {
        /* stream: what the application produced goes out now */
        b->flush = 1;
    }

    rc = ngx_http_output_filter(r, out);

    /* our links follow the busy ones until nginx is done with them */

    for (ll = &ctx->busy; *ll; ll = &(*ll)->next) { /* void */ }

    *ll = out;

    ngx_http_wsgi_update_busy(ctx);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi output: %i, busy: %p", rc, ctx->busy);

    if (rc == NGX_OK && (ctx->busy || r->buffered || r->connection->buffered))
    {
        return NGX_AGAIN;
    }

    return rc;
}


/* a file range nginx sends itself; the descriptor closes with the request */

static ngx_int_t
ngx_http_wsgi_send_file(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_chunk_t *chunk, ngx_buf_t *b)
{
    ngx_fd_t             fd;
    ngx_http_request_t  *r;

    static ngx_str_t  file_wrapper = ngx_string("wsgi.file_wrapper");
    static ngx_str_t  temp_file = ngx_string("wsgi temp file");

    r = ctx->request;

    fd = chunk->fd;
    chunk->fd = NGX_INVALID_FILE;

    if (ngx_http_wsgi_close_file(r, fd) != NGX_OK) {
        return NGX_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_ERROR;
    }

    b->in_file = 1;
    b->file_pos = chunk->offset;
    b->file_last = chunk->offset + (off_t) chunk->size;

    b->file->fd = fd;
    b->file->name = chunk->temp ? temp_file : file_wrapper;
    b->file->log = r->connection->log;

    return NGX_OK;
}


/* the request's pool closes fd; if it cannot, fd is closed now */

static ngx_int_t
ngx_http_wsgi_close_file(ngx_http_request_t *r, ngx_fd_t fd)
{
    ngx_pool_cleanup_t       *cln;
    ngx_pool_cleanup_file_t  *clnf;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;

    clnf->fd = fd;
    clnf->name = (u_char *) "wsgi.file_wrapper";
    clnf->log = r->connection->log;

    return NGX_OK;
}


/* sent buffers give their bytes objects to the next step to release */

void
ngx_http_wsgi_update_busy(ngx_http_wsgi_ctx_t *ctx)
{
    PyObject             **pin;
    ngx_chain_t           *cl;
    ngx_http_wsgi_buf_t   *wb;

    while (ctx->busy) {
        cl = ctx->busy;
        wb = (ngx_http_wsgi_buf_t *) cl->buf;

        if (ngx_buf_size(&wb->buf) != 0) {
            break;
        }

        if (wb->obj) {
            pin = ngx_array_push(&ctx->release);
            if (pin == NULL) {
                /* keep it pinned: the cleanup gets it through busy */
                break;
            }

            *pin = wb->obj;
            wb->obj = NULL;
        }

        ctx->busy = cl->next;
        cl->next = ctx->free;
        ctx->free = cl;
    }
}


void
ngx_http_wsgi_discard_output(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_uint_t   i;
    PyObject   **pin;

    for (i = 0; i < ctx->nout; i++) {

        if (ctx->out[i].fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(ctx->out[i].fd);
            ctx->out[i].fd = NGX_INVALID_FILE;
        }

        if (ctx->out[i].obj == NULL) {
            continue;
        }

        pin = ngx_array_push(&ctx->release);
        if (pin == NULL) {
            /* the step cleanup releases what is left in out */
            ngx_memmove(ctx->out, &ctx->out[i],
                        (ctx->nout - i) * sizeof(ngx_http_wsgi_chunk_t));
            ctx->nout -= i;
            return;
        }

        *pin = ctx->out[i].obj;
    }

    ctx->nout = 0;
}
