
/*
 * nginx mod_wsgi: the listening sockets' backlog after an inline step.
 */


#include "ngx_http_wsgi_module.h"
#include <poll.h>


/*
 * Clients that connect during an inline step queue in the backlog, and a
 * graceful stop would close them: a step that ends a tick or more into the
 * pass posts an event that accepts them (nginx accepts one per pass).
 */

#define NGX_HTTP_WSGI_ACCEPT_MAX  256   /* per listening socket and pass */


static void ngx_http_wsgi_accept_handler(ngx_event_t *ev);


static ngx_event_t  ngx_http_wsgi_accept_event;


void
ngx_http_wsgi_accept_after(void)
{
    ngx_event_t      *ev;
    struct timespec   ts;

    /* ngx_current_msec is this clock as of this pass; cheap from vDSO */

    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0
        || (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000
           == ngx_current_msec
        || ngx_exiting)
    {
        return;
    }

    ev = &ngx_http_wsgi_accept_event;

    if (ev->posted) {
        return;
    }

    ev->handler = ngx_http_wsgi_accept_handler;
    ev->log = ngx_cycle->log;

    ngx_post_event(ev, &ngx_posted_events);
}


static void
ngx_http_wsgi_accept_handler(ngx_event_t *ev)
{
    ngx_uint_t         i, n;
    struct pollfd      pfd;
    ngx_listening_t   *ls;
    ngx_connection_t  *c;

    /* a stop that has arrived in this pass has not closed them yet */

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    ls = ngx_cycle->listening.elts;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {

        c = ls[i].connection;

        /* another worker's reuseport socket, or the accept mutex's turn */

        if (c == NULL || ls[i].fd == (ngx_socket_t) -1 || !c->read->active) {
            continue;
        }

        for (n = 0; n < NGX_HTTP_WSGI_ACCEPT_MAX; n++) {

            if (ngx_accept_disabled > 0) {
                return;
            }

            if (!c->read->active) {
                /* out of descriptors: nginx disabled it for a while */
                break;
            }

            pfd.fd = ls[i].fd;
            pfd.events = POLLIN;
            pfd.revents = 0;

            if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLIN)) {
                break;
            }

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                           "wsgi accept after a step on %V",
                           &ls[i].addr_text);

            c->read->handler(c->read);
        }
    }
}
