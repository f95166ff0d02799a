
/*
 * nginx mod_wsgi: the event loop round of inline mode: its steps take the
 * GIL once, and what its ended requests leave is released when it ends.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_DEFER_SIZE  32768


typedef struct {
    ngx_http_wsgi_objs_t         objs;
    ngx_event_t                  event;
    ngx_uint_t                   gil;         /* held for the round */
    size_t                       size;        /* of the bytes in objs */
} ngx_http_wsgi_deferred_t;


static void ngx_http_wsgi_deferred_post(ngx_http_wsgi_deferred_t *d);
static void ngx_http_wsgi_deferred_handler(ngx_event_t *ev);


static ngx_http_wsgi_deferred_t  ngx_http_wsgi_deferred;


/*
 * What ended requests leave waits for the end of the round, when the GIL
 * is released, rather than costing a GIL round trip each.  Not many
 * bodies' bytes, though: freed together past malloc's trim threshold, the
 * next round would fault the heap in again.
 */

ngx_int_t
ngx_http_wsgi_defer(ngx_http_wsgi_interp_t *interp, PyObject **objs,
    ngx_uint_t n)
{
    ngx_uint_t                 i;
    ngx_http_wsgi_deferred_t  *d;

    d = &ngx_http_wsgi_deferred;

    if (n == 0) {
        return NGX_OK;
    }

    if (ngx_http_wsgi_objs_interp(&d->objs, interp, ngx_cycle->log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_wsgi_objs_add(&d->objs, objs, n, ngx_cycle->log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (d->gil) {
        for (i = 0; i < n; i++) {
            if (!((uintptr_t) objs[i] & NGX_HTTP_WSGI_TAGS)
                && PyBytes_CheckExact(objs[i]))
            {
                d->size += PyBytes_GET_SIZE(objs[i]);
            }
        }

        if (d->size >= NGX_HTTP_WSGI_DEFER_SIZE) {
            ngx_http_wsgi_step_release_objs(interp, d->objs.elts,
                                            d->objs.nelts);
            d->objs.nelts = 0;
            d->size = 0;
            return NGX_OK;
        }
    }

    ngx_http_wsgi_deferred_post(d);

    return NGX_OK;
}


/* long Python code still lets threads in; no GIL while the loop waits */

void
ngx_http_wsgi_hold_gil(void)
{
    ngx_http_wsgi_deferred_t  *d;

    d = &ngx_http_wsgi_deferred;

    if (d->gil) {
        return;
    }

    ngx_http_wsgi_python_enter(ngx_http_wsgi_interp);
    d->gil = 1;

    ngx_http_wsgi_deferred_post(d);
}


/* the deferred work runs at the end of the round, after its events */

static void
ngx_http_wsgi_deferred_post(ngx_http_wsgi_deferred_t *d)
{
    ngx_event_t  *ev;

    ev = &d->event;

    if (!ev->posted) {
        ev->handler = ngx_http_wsgi_deferred_handler;
        ev->log = ngx_cycle->log;
        ev->data = d;
        ngx_post_event(ev, &ngx_posted_events);
    }
}


static void
ngx_http_wsgi_deferred_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_release_deferred();
}


/* also on worker exit, before Python goes */

void
ngx_http_wsgi_release_deferred(void)
{
    ngx_http_wsgi_deferred_t  *d;

    d = &ngx_http_wsgi_deferred;

    if (d->event.posted) {
        ngx_delete_posted_event(&d->event);
    }

    if (d->objs.nelts) {
        ngx_http_wsgi_step_release_objs(d->objs.interp, d->objs.elts,
                                        d->objs.nelts);
        d->objs.nelts = 0;
    }

    d->size = 0;

    if (d->gil) {
        ngx_http_wsgi_python_leave();
        d->gil = 0;
    }
}


ngx_int_t
ngx_http_wsgi_objs_add(ngx_http_wsgi_objs_t *a, PyObject **objs,
    ngx_uint_t n, ngx_log_t *log)
{
    size_t      size;
    PyObject  **p;

    if (a->nelts + n > a->nalloc) {
        size = ngx_max(2 * a->nalloc, a->nelts + n + 64);

        p = ngx_alloc(size * sizeof(PyObject *), log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (a->nelts) {
            ngx_memcpy(p, a->elts, a->nelts * sizeof(PyObject *));
        }

        ngx_free(a->elts);
        a->elts = p;
        a->nalloc = size;
    }

    ngx_memcpy(&a->elts[a->nelts], objs, n * sizeof(PyObject *));
    a->nelts += n;

    return NGX_OK;
}
