
/*
 * nginx mod_wsgi: a step's output as nginx output.
 *
 * The status and headers a step found go to the request's headers_out;
 * its body chunks become buffers passed to the output filters, each
 * pointing at the bytes object (or the file) the chunk holds, which stays
 * pinned until nginx has sent it.
 */


#include "ngx_http_wsgi_module.h"


static ngx_int_t ngx_http_wsgi_send_file(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_chunk_t *chunk, ngx_buf_t *b);
static ngx_int_t ngx_http_wsgi_close_file(ngx_http_request_t *r,
    ngx_fd_t fd);


ngx_int_t
ngx_http_wsgi_send_header(ngx_http_wsgi_ctx_t *ctx)
{
    u_char                    *p, *v, *name, *value;
    size_t                     nlen, vlen;
    ngx_int_t                  rc;
    ngx_uint_t                 i, kind;
    ngx_table_elt_t           *h;
    ngx_http_request_t        *r;
    ngx_http_wsgi_loc_conf_t  *wlcf;

    r = ctx->request;

    r->headers_out.status = ctx->status_code;
    r->headers_out.status_line = ctx->status_line;

    /* the bytes stay referenced by the context until its cleanup */

    p = ctx->header_block;

    for (i = 0; i < ctx->nheaders; i++) {
        kind = *p++;
        name = p;
        nlen = ngx_strlen(name);
        value = name + nlen + 1;
        vlen = ngx_strlen(value);
        p = value + vlen + 1;

        if (kind == NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH) {
            r->headers_out.content_length_n = ctx->length;
            continue;
        }

        if (kind == NGX_HTTP_WSGI_HEADER_CONTENT_TYPE) {
            r->headers_out.content_type.data = value;
            r->headers_out.content_type.len = vlen;
            r->headers_out.content_type_len = vlen;

            for (v = value; v < value + vlen; v++) {
                if (*v == ';' || *v == ' ') {
                    r->headers_out.content_type_len = v - value;
                    break;
                }
            }

            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = name;
        h->key.len = nlen;
        h->value.data = value;
        h->value.len = vlen;
        h->lowcase_key = NULL;

        /* the application's own Date and Server replace nginx's */

        switch (kind) {

        case NGX_HTTP_WSGI_HEADER_DATE:
            r->headers_out.date = h;
            break;

        case NGX_HTTP_WSGI_HEADER_SERVER:
            r->headers_out.server = h;
            break;

        case NGX_HTTP_WSGI_HEADER_CONTENT_ENCODING:
            r->headers_out.content_encoding = h;
            break;

        case NGX_HTTP_WSGI_HEADER_ETAG:
            /* for If-None-Match, If-Match and If-Range */
            r->headers_out.etag = h;
            break;

        case NGX_HTTP_WSGI_HEADER_LAST_MODIFIED:
            /* for If-Modified-Since and If-Unmodified-Since */
            r->headers_out.last_modified = h;
            r->headers_out.last_modified_time = ngx_parse_http_time(value,
                                                                    vlen);
            break;

        default:
            break;
        }
    }

    /*
     * ours when the whole body is known: a file, a spooled body, a list;
     * not 0 for HEAD, as in Apache: an application that answers HEAD
     * without a body does not tell its GET body's length
     */

    if (ctx->length < 0
        && !(ctx->add_length == 0 && r->method == NGX_HTTP_HEAD))
    {
        r->headers_out.content_length_n = ctx->add_length;
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wsgi_module);

    /*
     * a method other than GET and HEAD has done its work by now: its
     * preconditions are the application's to check, before it acts
     */

    if (!wlcf->cache_validation
        || !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        r->disable_not_modified = 1;
    }

    if (wlcf->allow_ranges
        && ctx->status_code == NGX_HTTP_OK
        && r->headers_out.content_length_n >= 0)
    {
        r->allow_ranges = 1;
    }

    /*
     * nginx recognizes bodiless statuses only without a status line of
     * the application's own
     */

    if (ctx->status_code == NGX_HTTP_NO_CONTENT
        || ctx->status_code == NGX_HTTP_NOT_MODIFIED)
    {
        r->header_only = 1;
        r->headers_out.content_length_n = -1;

        if (ctx->status_code == NGX_HTTP_NO_CONTENT) {
            ngx_str_null(&r->headers_out.content_type);
            r->headers_out.content_type_len = 0;
        }
    }

    ctx->header_sent = 1;

    rc = ngx_http_send_header(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi header sent: %ui, rc: %i", ctx->status_code, rc);

    if (r->header_only) {
        ctx->header_only = 1;
    }

    return rc;
}


/*
 * Passes the step's chunks to the output filters, each buffer pointing at
 * its bytes object, which stays pinned until nginx has sent it.
 */

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


/*
 * A file chunk: nginx sends the range itself (sendfile, aio, output_buffers
 * and the filters apply); the descriptor is closed with the request.
 */

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
