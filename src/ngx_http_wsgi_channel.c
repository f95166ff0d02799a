
/*
 * nginx mod_wsgi: from the pool threads to the event loop, finished steps
 * and waiting write()s or wsgi.input.  A thread writes the eventfd only
 * when the event loop is going to sleep ("armed").
 */


#include "ngx_http_wsgi_module.h"

#include <sys/eventfd.h>


/* ngx_http_wsgi_channel_drain(): then the threads write the eventfd */
#define NGX_HTTP_WSGI_ARM_IDLE    0         /* if nothing came back */
#define NGX_HTTP_WSGI_ARM         1         /* always */
#define NGX_HTTP_WSGI_ARM_NOT     2         /* not: the loop looks again */


static void ngx_http_wsgi_channel_handler(ngx_event_t *rev);
static void ngx_http_wsgi_channel_check(ngx_event_t *ev);
static ngx_uint_t ngx_http_wsgi_channel_drain(ngx_uint_t arm);


pthread_mutex_t              ngx_http_wsgi_channel_mutex =
                                 PTHREAD_MUTEX_INITIALIZER;

/* under the mutex */
ngx_http_wsgi_ctx_t         *ngx_http_wsgi_channel_done;
ngx_uint_t                   ngx_http_wsgi_channel_armed = 1;
static ngx_http_wsgi_ctx_t  *ngx_http_wsgi_channel_queue;

static ngx_connection_t     *ngx_http_wsgi_channel;
static ngx_event_t           ngx_http_wsgi_channel_next;   /* no waiting */
static ngx_uint_t            ngx_http_wsgi_channel_looked; /* this round */


ngx_int_t
ngx_http_wsgi_channel_open(ngx_cycle_t *cycle)
{
    int                fd;
    ngx_connection_t  *c;

    fd = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "wsgi: eventfd() failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    c->read->handler = ngx_http_wsgi_channel_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    ngx_http_wsgi_channel_next.handler = ngx_http_wsgi_channel_check;
    ngx_http_wsgi_channel_next.log = cycle->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_http_wsgi_channel = c;

    return NGX_OK;
}


void
ngx_http_wsgi_channel_close(void)
{
    if (ngx_http_wsgi_channel) {
        ngx_close_connection(ngx_http_wsgi_channel);
        ngx_http_wsgi_channel = NULL;
    }
}


/* after a round that started an idle pool: look again, without waiting */

void
ngx_http_wsgi_channel_look_later(void)
{
    if (!ngx_http_wsgi_channel_next.posted) {
        ngx_post_event(&ngx_http_wsgi_channel_next, &ngx_posted_next_events);
    }
}


/* right after waking a runner: what came back, the eventfd left as it is */

void
ngx_http_wsgi_channel_look_now(void)
{
    if (!ngx_http_wsgi_channel_looked) {
        ngx_http_wsgi_channel_looked = 1;
        (void) ngx_http_wsgi_channel_drain(NGX_HTTP_WSGI_ARM_NOT);
    }
}


/* Python side, no GIL; NGX_AGAIN: another thread waited meanwhile */

ngx_int_t
ngx_http_wsgi_thread_wait(ngx_http_wsgi_ctx_t *ctx, ngx_uint_t pull)
{
    sem_t            wake;
    ngx_int_t        rc;
    ngx_uint_t       notify;
    struct timespec  ts;

    if (ngx_http_wsgi_forked) {
        /* the event loop is the parent's */
        ngx_log_error(NGX_LOG_ERR, ctx->log, 0,
                      "wsgi: write() or wsgi.input used in a process "
                      "forked by the application");
        return NGX_ERROR;
    }

    if (ctx->py_waiting) {
        /* the caller looks again at what the other one brought */
        ngx_http_wsgi_thread_turn(ctx);
        return NGX_AGAIN;
    }

    if (sem_init(&wake, 0, 0) != 0) {
        ngx_log_error(NGX_LOG_ALERT, ctx->log, ngx_errno,
                      "wsgi: sem_init() failed");
        return NGX_ERROR;
    }

    ctx->py_waiters++;
    ctx->py_waiting = 1;

    Py_BEGIN_ALLOW_THREADS

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    notify = ngx_http_wsgi_channel_armed;
    ngx_http_wsgi_channel_armed = 0;

    ctx->flush = NGX_AGAIN;
    ctx->pull = pull;
    ctx->wake = &wake;
    ctx->flush_next = ngx_http_wsgi_channel_queue;
    ngx_http_wsgi_channel_queue = ctx;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    if (notify) {
        ngx_http_wsgi_channel_notify(ctx->log);
    }

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    while (ctx->flush == NGX_AGAIN) {

        if (ngx_terminate) {
            /* the event loop is gone: do not keep the pool from exiting */
            ctx->flush = NGX_ERROR;
            break;
        }

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;

        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }

        (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
        (void) sem_timedwait(&wake, &ts);
        (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);
    }

    /* the event loop posts under the mutex: nothing touches wake after */

    ctx->wake = NULL;
    rc = ctx->flush;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    Py_END_ALLOW_THREADS

    ctx->py_waiting = 0;
    ctx->py_waiters--;

    (void) sem_destroy(&wake);

    return rc;
}


/* Python side: one wait at a time, the others counted so the step waits */

void
ngx_http_wsgi_thread_turn(ngx_http_wsgi_ctx_t *ctx)
{
    if (ngx_http_wsgi_forked) {
        /* the thread that waits is the parent's: the next wait fails */
        ctx->py_waiting = 0;
        return;
    }

    ctx->py_waiters++;

    while (ctx->py_waiting) {
        Py_BEGIN_ALLOW_THREADS
        ngx_msleep(1);
        Py_END_ALLOW_THREADS
    }

    ctx->py_waiters--;
}


/* nginx side: the flush of ctx is over */

void
ngx_http_wsgi_thread_signal(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                   "wsgi flush done: %i", rc);

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    ctx->flush = rc;

    /* sem_post() never waits: see ngx_http_wsgi_sched_kick() */

    if (ctx->wake) {
        (void) sem_post(ctx->wake);
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
}


static void
ngx_http_wsgi_channel_handler(ngx_event_t *rev)
{
    uint64_t           n;
    ngx_connection_t  *c;

    c = rev->data;

    /* one read resets the counter, however many writes there were */

    if (read(c->fd, &n, sizeof(n)) == -1 && ngx_errno != NGX_EAGAIN) {
        ngx_log_error(NGX_LOG_ALERT, rev->log, ngx_errno,
                      "wsgi: read() from the channel failed");
    }

    (void) ngx_http_wsgi_channel_drain(NGX_HTTP_WSGI_ARM);
}


/* no step came back: the eventfd is armed and the loop may sleep */

static void
ngx_http_wsgi_channel_check(ngx_event_t *ev)
{
    ngx_http_wsgi_channel_looked = 0;

    if (ngx_http_wsgi_channel_drain(NGX_HTTP_WSGI_ARM_IDLE)) {
        ngx_post_event(ev, &ngx_posted_next_events);
    }
}


/* handles what the threads left; the number of contexts */

static ngx_uint_t
ngx_http_wsgi_channel_drain(ngx_uint_t arm)
{
    ngx_uint_t            n;
    ngx_http_wsgi_ctx_t  *ctx, *next, *done;

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    ctx = ngx_http_wsgi_channel_queue;
    ngx_http_wsgi_channel_queue = NULL;

    done = ngx_http_wsgi_channel_done;
    ngx_http_wsgi_channel_done = NULL;

    if (arm == NGX_HTTP_WSGI_ARM
        || (arm == NGX_HTTP_WSGI_ARM_IDLE && ctx == NULL && done == NULL))
    {
        ngx_http_wsgi_channel_armed = 1;
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    n = 0;

    while (ctx) {
        next = ctx->flush_next;
        ctx->flush_next = NULL;

        ngx_http_wsgi_flush(ctx);

        ctx = next;
        n++;
    }

    while (done) {
        next = done->step_next;
        done->step_next = NULL;

        ngx_http_wsgi_thread_complete(done);

        done = next;
        n++;
    }

    return n;
}


/* a thread: the event loop sleeps, or is about to */

void
ngx_http_wsgi_channel_notify(ngx_log_t *log)
{
    uint64_t  one;

    one = 1;

    if (write(ngx_http_wsgi_channel->fd, &one, sizeof(one)) == -1
        && ngx_errno != NGX_EAGAIN)
    {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "wsgi: write() to the channel failed");
    }
}
