
/*
 * nginx mod_wsgi: the spool, response body held back by a step.
 */


#include "ngx_http_wsgi_module.h"


static ngx_fd_t ngx_http_wsgi_spool_file(ngx_http_wsgi_ctx_t *ctx);


/*
 * The spool holds body back: what write() produces while the application
 * runs (wsgi_write_buffering), or the whole body (multipart ranges).  It
 * is memory up to spool_max, then an unlinked file in wsgi_temp_path.
 */

void
ngx_http_wsgi_spool_add(ngx_http_wsgi_ctx_t *ctx, u_char *data, size_t size)
{
    u_char   *p;
    ssize_t   n;
    size_t    cap;
    PyObject  *buf;

    if (ctx->spool_fd == NGX_INVALID_FILE
        && (ctx->spool_len + size <= ctx->spool_max || ctx->spool_failed))
    {
        cap = ctx->spool ? (size_t) PyBytes_GET_SIZE(ctx->spool) : 0;

        if (ctx->spool_len + size > cap) {
            cap = ngx_max(ctx->spool_max, 2 * (ctx->spool_len + size));

            buf = PyBytes_FromStringAndSize(NULL, cap);
            if (buf == NULL) {
                PyErr_Clear();
                goto failed;
            }

            if (ctx->spool_len) {
                ngx_memcpy(PyBytes_AS_STRING(buf),
                           PyBytes_AS_STRING(ctx->spool), ctx->spool_len);
            }

            Py_XSETREF(ctx->spool, buf);
        }

        ngx_memcpy(PyBytes_AS_STRING(ctx->spool) + ctx->spool_len, data,
                   size);
        ctx->spool_len += size;
        return;
    }

    if (ctx->spool_fd == NGX_INVALID_FILE) {
        ctx->spool_fd = ngx_http_wsgi_spool_file(ctx);

        if (ctx->spool_fd == NGX_INVALID_FILE) {
            /* logged: nothing is lost, the spool stays in memory */
            ctx->spool_failed = 1;
            ngx_http_wsgi_spool_add(ctx, data, size);
            return;
        }

        if (ctx->spool_len) {
            ngx_http_wsgi_spool_add(ctx,
                                    (u_char *) PyBytes_AS_STRING(ctx->spool),
                                    ctx->spool_len);
            ctx->spool_len = 0;
            Py_CLEAR(ctx->spool);
        }
    }

    p = data;

    while (size) {
        n = pwrite(ctx->spool_fd, p, size, ctx->spool_file_len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_ERR, ctx->log, ngx_errno,
                          "wsgi: writing a temp file in \"%s\" failed",
                          ctx->temp_dir);
            goto failed;
        }

        p += n;
        size -= n;
        ctx->spool_file_len += n;
    }

    return;

failed:

    ctx->failed = 1;
}


static ngx_fd_t
ngx_http_wsgi_spool_file(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_fd_t     fd;
    ngx_uint_t   i;
    u_char       name[NGX_MAX_PATH];

    static ngx_atomic_t  ngx_http_wsgi_spool_n;

    for (i = 0; i < 16; i++) {
        if (ngx_snprintf(name, NGX_MAX_PATH - 1, "%s/wsgi.%P.%uA%Z",
                         ctx->temp_dir, ngx_pid,
                         ngx_atomic_fetch_add(&ngx_http_wsgi_spool_n, 1))
            == name + NGX_MAX_PATH - 1)
        {
            break;
        }

        fd = open((char *) name, O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600);

        if (fd != NGX_INVALID_FILE) {
            /* nobody needs its name: it goes away with its descriptor */
            (void) unlink((char *) name);
            return fd;
        }

        if (ngx_errno != NGX_EEXIST) {
            break;
        }
    }

    ngx_log_error(NGX_LOG_ERR, ctx->log, ngx_errno,
                  "wsgi: cannot create a temp file in \"%s\", keeping "
                  "the response body in memory", ctx->temp_dir);

    return NGX_INVALID_FILE;
}


/* start_response() with exc_info: what was held back is not the answer */

void
ngx_http_wsgi_spool_discard(ngx_http_wsgi_ctx_t *ctx)
{
    ctx->produced -= ctx->spool_len + ctx->spool_file_len;
    ctx->spool_len = 0;
    Py_CLEAR(ctx->spool);

    if (ctx->spool_fd != NGX_INVALID_FILE) {
        (void) close(ctx->spool_fd);
        ctx->spool_fd = NGX_INVALID_FILE;
        ctx->spool_file_len = 0;
    }
}


void
ngx_http_wsgi_spool_flush(ngx_http_wsgi_ctx_t *ctx)
{
    if (ctx->spool_fd != NGX_INVALID_FILE) {
        if (ctx->spool_file_len) {
            ngx_http_wsgi_step_output_file(ctx, ctx->spool_fd, 0,
                                           ctx->spool_file_len, 1);

        } else {
            (void) close(ctx->spool_fd);
        }

        ctx->spool_fd = NGX_INVALID_FILE;
        ctx->spool_file_len = 0;
        return;
    }

    if (ctx->spool_len) {
        (void) ngx_http_wsgi_step_chunk_add(ctx, ctx->spool,
                                   (u_char *) PyBytes_AS_STRING(ctx->spool),
                                   ctx->spool_len);
        ctx->spool_len = 0;
    }

    Py_CLEAR(ctx->spool);
}
