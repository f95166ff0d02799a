
/*
 * nginx mod_wsgi: execution steps on nginx thread pools.
 *
 * A step is posted as a thread task; the pool thread takes the GIL, runs
 * it, and the task's completion event hands the context back to the event
 * loop.  The request is pinned meanwhile (r->main->blocked), and a timer
 * keeps a gracefully exiting worker alive until the step is back.
 *
 * write() needs the event loop while its step is still running: the pool
 * thread queues the context on the worker's channel (an eventfd in the
 * event loop), and waits, without the GIL, until the event loop has passed
 * the data to nginx's output and the connection has drained.
 */


#include "ngx_http_wsgi_module.h"

#include <sys/eventfd.h>


#define NGX_HTTP_WSGI_KEEP_ALIVE  3600000


typedef struct {
    ngx_thread_task_t        task;
    ngx_uint_t               n;
    PyObject                *objs[1];
} ngx_http_wsgi_release_t;


static void ngx_http_wsgi_thread_handler(void *data, ngx_log_t *log);
static void ngx_http_wsgi_thread_event_handler(ngx_event_t *ev);
static void ngx_http_wsgi_thread_timer_handler(ngx_event_t *ev);
static void ngx_http_wsgi_release_handler(void *data, ngx_log_t *log);
static void ngx_http_wsgi_release_event_handler(ngx_event_t *ev);
static void ngx_http_wsgi_channel_handler(ngx_event_t *rev);


extern ngx_module_t  ngx_thread_pool_module;


/* the worker's channel: contexts whose write() waits for the event loop */

static ngx_connection_t     *ngx_http_wsgi_channel;
static ngx_http_wsgi_ctx_t  *ngx_http_wsgi_channel_queue;
static pthread_mutex_t       ngx_http_wsgi_channel_mutex =
                                 PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t        ngx_http_wsgi_channel_cond =
                                 PTHREAD_COND_INITIALIZER;


/*
 * Declares "thread_pool NAME threads=N max_queue=M" as if it were in the
 * configuration, for the pool the module uses when none is named.
 */

ngx_thread_pool_t *
ngx_http_wsgi_thread_pool_default(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t threads, ngx_uint_t max_queue)
{
    char               *rv;
    ngx_str_t          *arg;
    ngx_conf_t          pcf;
    ngx_array_t         args;
    ngx_command_t      *cmd;
    ngx_thread_pool_t  *tp;

    tp = ngx_thread_pool_get(cf->cycle, name);
    if (tp) {
        return tp;
    }

    for (cmd = ngx_thread_pool_module.commands; cmd->name.len; cmd++) {
        if (cmd->name.len == sizeof("thread_pool") - 1
            && ngx_strncmp(cmd->name.data, "thread_pool", cmd->name.len)
               == 0)
        {
            break;
        }
    }

    if (cmd->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"thread_pool\" directive in this nginx");
        return NULL;
    }

    if (ngx_array_init(&args, cf->temp_pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    arg = ngx_array_push_n(&args, 4);
    if (arg == NULL) {
        return NULL;
    }

    ngx_str_set(&arg[0], "thread_pool");
    arg[1] = *name;

    arg[2].data = ngx_pnalloc(cf->temp_pool,
                              sizeof("threads=") + NGX_INT_T_LEN);
    arg[3].data = ngx_pnalloc(cf->temp_pool,
                              sizeof("max_queue=") + NGX_INT_T_LEN);
    if (arg[2].data == NULL || arg[3].data == NULL) {
        return NULL;
    }

    arg[2].len = ngx_sprintf(arg[2].data, "threads=%ui", threads)
                 - arg[2].data;
    arg[3].len = ngx_sprintf(arg[3].data, "max_queue=%ui", max_queue)
                 - arg[3].data;

    pcf = *cf;
    pcf.args = &args;

    rv = cmd->set(&pcf, cmd, NULL);

    if (rv != NGX_CONF_OK) {
        return NULL;
    }

    return ngx_thread_pool_get(cf->cycle, name);
}


ngx_int_t
ngx_http_wsgi_thread_init(ngx_cycle_t *cycle)
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

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_http_wsgi_channel = c;

    return NGX_OK;
}


void
ngx_http_wsgi_thread_done(ngx_cycle_t *cycle)
{
    if (ngx_http_wsgi_channel) {
        ngx_close_connection(ngx_http_wsgi_channel);
        ngx_http_wsgi_channel = NULL;
    }
}


/* nginx side: runs a step of ctx on its thread pool */

ngx_int_t
ngx_http_wsgi_thread_post(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step)
{
    ngx_thread_task_t   *task;
    ngx_http_request_t  *r;

    r = ctx->request;
    task = ctx->task;

    if (task == NULL) {
        task = ngx_thread_task_alloc(r->pool, 0);
        if (task == NULL) {
            return NGX_ERROR;
        }

        task->ctx = ctx;
        task->handler = ngx_http_wsgi_thread_handler;
        task->event.handler = ngx_http_wsgi_thread_event_handler;
        task->event.data = ctx;

        ctx->timer.handler = ngx_http_wsgi_thread_timer_handler;
        ctx->timer.data = ctx;
        ctx->timer.log = r->connection->log;

        ctx->task = task;
    }

    ctx->step = step;

    if (ngx_thread_task_post(ctx->thread_pool, task) != NGX_OK) {
        return NGX_DECLINED;
    }

    ctx->running = 1;
    r->main->blocked++;

    ngx_add_timer(&ctx->timer, NGX_HTTP_WSGI_KEEP_ALIVE);

    return NGX_OK;
}


static void
ngx_http_wsgi_thread_handler(void *data, ngx_log_t *log)
{
    ngx_http_wsgi_ctx_t *ctx = data;

    ngx_http_wsgi_step_run(ctx, ctx->step);
}


static void
ngx_http_wsgi_thread_event_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_ctx_t *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "wsgi thread step %d done", ctx->step);

    r->main->blocked--;
    ctx->running = 0;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_wsgi_step_complete(ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_wsgi_thread_timer_handler(ngx_event_t *ev)
{
    /* a long step: keep the worker from exiting under it */

    ngx_add_timer(ev, NGX_HTTP_WSGI_KEEP_ALIVE);
}


/*
 * Releases bytes objects the request no longer needs on a pool thread:
 * the request pool that listed them is gone by the time the task runs.
 */

void
ngx_http_wsgi_thread_release(ngx_thread_pool_t *tp, PyObject **objs,
    ngx_uint_t n, ngx_log_t *log)
{
    ngx_uint_t                i;
    PyThreadState            *ts;
    ngx_http_wsgi_release_t  *rel;

    if (n == 0) {
        return;
    }

    rel = ngx_calloc(sizeof(ngx_http_wsgi_release_t)
                     + (n - 1) * sizeof(PyObject *), log);

    if (rel) {
        rel->task.ctx = rel;
        rel->task.handler = ngx_http_wsgi_release_handler;
        rel->task.event.handler = ngx_http_wsgi_release_event_handler;
        rel->task.event.data = rel;
        rel->n = n;
        ngx_memcpy(rel->objs, objs, n * sizeof(PyObject *));

        if (ngx_thread_task_post(tp, &rel->task) == NGX_OK) {
            return;
        }

        ngx_free(rel);
    }

    /* the queue is full: release them here rather than leak them */

    ts = ngx_http_wsgi_python_enter();

    for (i = 0; i < n; i++) {
        Py_DECREF(objs[i]);
    }

    ngx_http_wsgi_python_leave(ts);
}


static void
ngx_http_wsgi_release_handler(void *data, ngx_log_t *log)
{
    ngx_http_wsgi_release_t *rel = data;

    ngx_uint_t      i;
    PyThreadState  *ts;

    ts = ngx_http_wsgi_python_enter();

    for (i = 0; i < rel->n; i++) {
        Py_DECREF(rel->objs[i]);
    }

    ngx_http_wsgi_python_leave(ts);
}


static void
ngx_http_wsgi_release_event_handler(ngx_event_t *ev)
{
    ngx_free(ev->data);
}


/*
 * Python side, on a pool thread holding the GIL: hands the step's output
 * to the event loop and waits until it is sent.  NGX_ERROR: the client is
 * gone or the worker is terminating.
 */

ngx_int_t
ngx_http_wsgi_thread_flush(ngx_http_wsgi_ctx_t *ctx)
{
    uint64_t         one;
    ngx_int_t        rc;
    struct timespec  ts;

    one = 1;

    Py_BEGIN_ALLOW_THREADS

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    ctx->flush = NGX_AGAIN;
    ctx->flush_next = ngx_http_wsgi_channel_queue;
    ngx_http_wsgi_channel_queue = ctx;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    if (write(ngx_http_wsgi_channel->fd, &one, sizeof(one)) == -1
        && ngx_errno != NGX_EAGAIN)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->log, ngx_errno,
                      "wsgi: write() to the channel failed");
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

        (void) pthread_cond_timedwait(&ngx_http_wsgi_channel_cond,
                                      &ngx_http_wsgi_channel_mutex, &ts);
    }

    rc = ctx->flush;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    Py_END_ALLOW_THREADS

    return rc;
}


/* nginx side: the flush of ctx is over */

void
ngx_http_wsgi_thread_signal(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->log, 0,
                   "wsgi flush done: %i", rc);

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    ctx->flush = rc;

    (void) pthread_cond_broadcast(&ngx_http_wsgi_channel_cond);
    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
}


static void
ngx_http_wsgi_channel_handler(ngx_event_t *rev)
{
    uint64_t              n;
    ngx_connection_t     *c;
    ngx_http_wsgi_ctx_t  *ctx, *next;

    c = rev->data;

    while (read(c->fd, &n, sizeof(n)) == sizeof(n)) { /* void */ }

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    ctx = ngx_http_wsgi_channel_queue;
    ngx_http_wsgi_channel_queue = NULL;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    while (ctx) {
        next = ctx->flush_next;
        ctx->flush_next = NULL;

        ngx_http_wsgi_flush(ctx);

        ctx = next;
    }
}
