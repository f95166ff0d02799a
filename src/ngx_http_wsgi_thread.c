
/*
 * nginx mod_wsgi: execution steps on nginx thread pools.  Steps wait in a
 * queue per pool, taken by "runners", thread tasks that run queued steps
 * until there are none.  Only one thread runs Python at a time, so a runner
 * is added only when there is none or the busy ones block.
 *
 * A step (its ctx), from the event loop to a pool thread and back:
 *
 *          thread_queue()        a runner            step_exec() returns
 *   (event loop) ------> QUEUED ------------> RUNNING ------------> DONE
 *   blocked++,           sched->head,         with the GIL  |  ^   on the
 *   away++               queued++                           v  |   channel
 *                        write(), wsgi.input: thread_wait()        |
 *                        until thread_signal() from the event loop v
 *   BACK: thread_complete() on the event loop: blocked--, away--; the
 *   request's next step may be queued
 *
 * A runner (a task of the pool):
 *
 *   (kick) ---> POSTED ---a pool thread---> RUNNING <-----------+
 *   runners++   in sched->active            releases, then steps |
 *                                             | nothing queued    | kick
 *                                             v                   |
 *                                           LINGERING ------------+
 *                                             | timed out, retired,
 *                                             v or the worker exits
 *                                           RETURNED: runners--, on
 *                                           sched->free
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_KEEP_ALIVE  3600000


#define NGX_HTTP_WSGI_STALE       250       /* us a step may wait */
#define NGX_HTTP_WSGI_LINGER      10        /* ms a runner waits for work */
#define NGX_HTTP_WSGI_LINGER_MAX  100       /* ms, if nobody tells it */

#define NGX_HTTP_WSGI_MALLOC_WARM (1024 * 1024)  /* bytes, see below */


struct ngx_http_wsgi_release_s {
    ngx_http_wsgi_release_t *next;
    ngx_uint_t               n;
    PyObject                *objs[1];
};


static ngx_http_wsgi_sched_t *ngx_http_wsgi_sched_get(
    ngx_thread_pool_t *pool, ngx_log_t *log);
static ngx_int_t ngx_http_wsgi_sched_runner(ngx_http_wsgi_sched_t *sched,
    ngx_log_t *log);
static void ngx_http_wsgi_sched_timer_handler(ngx_event_t *ev);
static void ngx_http_wsgi_sched_kick(ngx_http_wsgi_sched_t *sched);
static ngx_uint_t ngx_http_wsgi_sched_stalled(ngx_http_wsgi_sched_t *sched,
    uint64_t now);
static void ngx_http_wsgi_sched_kick_handler(ngx_event_t *ev);
static void ngx_http_wsgi_runner_handler(void *data, ngx_log_t *log);
static void ngx_http_wsgi_runner_event_handler(ngx_event_t *ev);
static void ngx_http_wsgi_sched_alive_handler(ngx_event_t *ev);
static void ngx_http_wsgi_sched_linger_handler(ngx_event_t *ev);
static void ngx_http_wsgi_sched_release(ngx_http_wsgi_sched_t *sched);
static void ngx_http_wsgi_thread_malloc(ngx_log_t *log);


ngx_http_wsgi_sched_t  *ngx_http_wsgi_scheds;


ngx_int_t
ngx_http_wsgi_thread_init(ngx_cycle_t *cycle, ngx_http_wsgi_main_conf_t *wmcf)
{
    if (wmcf->pooled) {
        ngx_http_wsgi_thread_malloc(cycle->log);
    }

    ngx_http_wsgi_priority_init(cycle, wmcf);

    return ngx_http_wsgi_channel_open(cycle);
}


/*
 * glibc's trim threshold rises only once an mmap()ed block is freed:
 * without that, the bodies a runner frees would be trimmed each round.
 */

static void
ngx_http_wsgi_thread_malloc(ngx_log_t *log)
{
    void  *p;

    p = ngx_alloc(NGX_HTTP_WSGI_MALLOC_WARM, log);

    if (p) {
        ngx_free(p);
    }
}


void
ngx_http_wsgi_thread_done(ngx_cycle_t *cycle)
{
    ngx_http_wsgi_sched_t  *sched;

    for (sched = ngx_http_wsgi_scheds; sched; sched = sched->next) {
        if (sched->objs.nelts && ngx_http_wsgi_interp) {
            ngx_http_wsgi_step_release_objs(sched->objs.interp,
                                            sched->objs.elts,
                                            sched->objs.nelts);
        }

        sched->objs.nelts = 0;
    }

    ngx_http_wsgi_channel_close();
}


/* nginx side: queues the step for a runner; NGX_DECLINED: the queue is full */

ngx_int_t
ngx_http_wsgi_thread_queue(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step,
    ngx_uint_t max_queue)
{
    ngx_uint_t              queued;
    ngx_http_request_t     *r;
    ngx_http_wsgi_sched_t  *sched;

    r = ctx->request;

    sched = ngx_http_wsgi_sched_get(ctx->thread_pool, r->connection->log);
    if (sched == NULL) {
        return NGX_ERROR;
    }

    ctx->step = step;
    ctx->step_next = NULL;
    ctx->queued = ngx_http_wsgi_thread_clock();

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    queued = sched->queued;

    if (step != NGX_HTTP_WSGI_STEP_CALL || queued < max_queue) {
        *sched->tail = ctx;
        sched->tail = &ctx->step_next;
        sched->queued++;
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    if (step == NGX_HTTP_WSGI_STEP_CALL && queued >= max_queue) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: %ui requests wait for a thread, "
                      "wsgi_max_queue reached", queued);
        return NGX_DECLINED;
    }

    /* runners are woken once per round, not once per step */

    if (!sched->kick.posted) {
        ngx_post_event(&sched->kick, &ngx_posted_events);
    }

    ctx->phase = NGX_HTTP_WSGI_PHASE_THREAD;
    r->main->blocked++;

    if (sched->away++ == 0) {
        ngx_add_timer(&sched->alive, NGX_HTTP_WSGI_KEEP_ALIVE);
    }

    return NGX_OK;
}


static void
ngx_http_wsgi_sched_kick_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_sched_t *sched = ev->data;

    ngx_http_wsgi_sched_release(sched);
    ngx_http_wsgi_sched_kick(sched);
    ngx_http_wsgi_priority_yield(sched);
}


static void
ngx_http_wsgi_sched_kick(ngx_http_wsgi_sched_t *sched)
{
    uint64_t    now;
    ngx_uint_t  n, need, waiting, wake, more, taken, look, started;

    now = ngx_http_wsgi_thread_clock();

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    waiting = (sched->queued || sched->releases);
    need = 0;
    wake = 0;
    more = 0;
    taken = 0;
    look = 0;

    if (waiting) {
        sched->retire = 0;
    }

    if (waiting && sched->idle) {
        taken = 1;
        wake = (sched->idle > sched->posted);

        if (wake
            && sched->queued > 1
            && sched->busy
            && ngx_http_wsgi_sched_stalled(sched, now))
        {
            /* one woken runner per step: it may block too */
            wake = ngx_min(sched->queued, sched->idle - sched->posted);
        }

        sched->posted += wake;

        more = (sched->queued > wake && sched->busy);

    } else if (waiting && sched->runners == sched->busy) {

        if (sched->runners == 0) {
            need = 1;

        } else if (ngx_http_wsgi_sched_stalled(sched, now)) {
            need = ngx_min(sched->queued, NGX_HTTP_WSGI_RUNNERS);
        }
    }

    sched->runners += need;

    if (need) {
        ngx_http_wsgi_priority_restart();
    }

    if ((taken || need) && sched->queued && sched->busy == 0) {

        /* an idle pool often finishes by the next round: look once, no sleep */

        ngx_http_wsgi_channel_armed = 0;
        look = 1;
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    if (look) {
        ngx_http_wsgi_channel_look_later();
    }

    /*
     * After the unlock, so the runner does not block on the mutex; a
     * semaphore, as pthread_cond_signal() may wait for an earlier runner.
     */

    for (n = 0; n < wake; n++) {
        (void) sem_post(&sched->wake);
    }

    /* a runner woken on our CPU is usually done: send while data is cached */

    if (look && wake) {
        ngx_http_wsgi_channel_look_now();
    }

    started = (taken || need);

    while (need) {
        if (ngx_http_wsgi_sched_runner(sched, ngx_cycle->log) != NGX_OK) {

            /* the pool is full: the steps wait for a runner to be free */

            (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);
            sched->runners -= need;
            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

            started = 0;
            break;
        }

        need--;
    }

    /* not always: a 1 ms timer costs every event loop sleep a reprogram */

    if (waiting
        && (!started || more)
        && !sched->timer.timer_set)
    {
        ngx_add_timer(&sched->timer, 1);
    }

    if (waiting) {
        sched->kicked = 1;

        if (!sched->linger.timer_set) {
            ngx_add_timer(&sched->linger, NGX_HTTP_WSGI_LINGER);
        }
    }
}


/* under the channel mutex */

static ngx_uint_t
ngx_http_wsgi_sched_stalled(ngx_http_wsgi_sched_t *sched, uint64_t now)
{
    return sched->head
           && now - sched->head->queued >= NGX_HTTP_WSGI_STALE
           && !ngx_http_wsgi_priority_computing(now);
}


/* the event loop: runners that had nothing to do since the last time go */

static void
ngx_http_wsgi_sched_linger_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_sched_t *sched = ev->data;

    ngx_uint_t  retire, runners;

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    retire = 0;

    if (sched->idle
        && sched->queued == 0
        && (!sched->kicked || ngx_exiting || ngx_terminate))
    {
        sched->retire = 1;

        if (sched->idle > sched->posted) {
            retire = sched->idle - sched->posted;
            sched->posted += retire;
        }
    }

    runners = sched->runners;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    while (retire--) {
        (void) sem_post(&sched->wake);
    }

    sched->kicked = 0;

    ngx_http_wsgi_priority_yield(sched);

    if (runners) {
        ngx_add_timer(ev, (ngx_exiting || ngx_terminate)
                          ? 1 : NGX_HTTP_WSGI_LINGER);
    }
}


static ngx_http_wsgi_sched_t *
ngx_http_wsgi_sched_get(ngx_thread_pool_t *pool, ngx_log_t *log)
{
    ngx_http_wsgi_sched_t      *sched;
    ngx_http_wsgi_main_conf_t  *wmcf;

    for (sched = ngx_http_wsgi_scheds; sched; sched = sched->next) {
        if (sched->pool == pool) {
            return sched;
        }
    }

    sched = ngx_calloc(sizeof(ngx_http_wsgi_sched_t), log);
    if (sched == NULL) {
        return NULL;
    }

    wmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_wsgi_module);

    sched->pool = pool;
    sched->tail = &sched->head;
    sched->priority = wmcf->priority;

    if (sem_init(&sched->wake, 0, 0) != 0) {
        ngx_free(sched);
        return NULL;
    }

    sched->timer.handler = ngx_http_wsgi_sched_timer_handler;
    sched->timer.data = sched;
    sched->timer.log = ngx_cycle->log;
    sched->timer.cancelable = 1;

    sched->kick.handler = ngx_http_wsgi_sched_kick_handler;
    sched->kick.data = sched;
    sched->kick.log = ngx_cycle->log;

    sched->alive.handler = ngx_http_wsgi_sched_alive_handler;
    sched->alive.data = sched;
    sched->alive.log = ngx_cycle->log;

    /* an exiting worker waits for it: it tells lingering runners to go */

    ngx_queue_init(&sched->active);

    sched->linger.handler = ngx_http_wsgi_sched_linger_handler;
    sched->linger.data = sched;
    sched->linger.log = ngx_cycle->log;

    sched->next = ngx_http_wsgi_scheds;
    ngx_http_wsgi_scheds = sched;

    return sched;
}


static ngx_int_t
ngx_http_wsgi_sched_runner(ngx_http_wsgi_sched_t *sched, ngx_log_t *log)
{
    ngx_http_wsgi_runner_t  *runner;

    runner = sched->free;

    if (runner) {
        sched->free = runner->next;

    } else {
        runner = ngx_calloc(sizeof(ngx_http_wsgi_runner_t), log);
        if (runner == NULL) {
            return NGX_ERROR;
        }

        runner->sched = sched;
        runner->task.ctx = runner;
        runner->task.handler = ngx_http_wsgi_runner_handler;
        runner->task.event.handler = ngx_http_wsgi_runner_event_handler;
        runner->task.event.data = runner;
    }

    runner->tid = 0;
    runner->busy = 0;
    runner->started = 0;
    runner->yielding = 0;

    if (ngx_thread_task_post(sched->pool, &runner->task) != NGX_OK) {
        runner->next = sched->free;
        sched->free = runner;
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&sched->active, &runner->queue);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0, "wsgi runner posted: %p",
                   runner);

    return NGX_OK;
}


static void
ngx_http_wsgi_sched_timer_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_sched_kick(ev->data);
}


static void
ngx_http_wsgi_runner_handler(void *data, ngx_log_t *log)
{
    ngx_http_wsgi_runner_t *runner = data;

    uint64_t                  now;
    ngx_uint_t                notify, lingered, woken, held;
    struct timespec           until;
    ngx_http_wsgi_ctx_t      *ctx;
    ngx_http_wsgi_sched_t    *sched;
    ngx_http_wsgi_release_t  *rel, *next;

    sched = runner->sched;
    lingered = 0;
    held = 0;

    if (sched->priority == NGX_HTTP_WSGI_PRIORITY_IDLE) {
        ngx_http_wsgi_priority_idle(log);
    }

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    runner->tid = gettid();

    if (ngx_http_wsgi_yields && sched->yielding) {
        ngx_http_wsgi_priority_runner(runner, 1);
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    for ( ;; ) {
        (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

        rel = sched->releases;
        sched->releases = NULL;

        ctx = sched->head;

        if (ctx == NULL && rel == NULL && held) {

            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

            ngx_http_wsgi_python_leave();
            held = 0;

            continue;
        }

        if (ctx == NULL && rel == NULL) {

            /*
             * Linger: the next step is often on its way.  The event loop
             * retires idle runners; LINGER_MAX is for a worker that exits
             * without telling them.
             */

            if (!lingered && !sched->retire && !ngx_terminate
                && !ngx_exiting)
            {
                sched->idle++;

                (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

                (void) clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += NGX_HTTP_WSGI_LINGER_MAX * 1000000;

                if (until.tv_nsec >= 1000000000) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000;
                }

                woken = (sem_timedwait(&sched->wake, &until) == 0);

                (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

                if (woken) {
                    sched->posted--;

                } else if (ngx_errno == ETIMEDOUT) {
                    lingered = 1;
                }

                sched->idle--;

                (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
                continue;
            }

            sched->runners--;
            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
            return;
        }

        lingered = 0;

        /* releases first: this round's bodies reuse that memory, cached */

        if (rel) {
            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

            if (!held) {
                ngx_http_wsgi_python_enter(ngx_http_wsgi_interp);
                held = 1;
            }

            for ( /* void */ ; rel; rel = next) {
                next = rel->next;

                ngx_http_wsgi_release(rel->objs, rel->n);
                ngx_free(rel);
            }

            if (ngx_http_wsgi_reaping) {
                /* a busy runner may not leave for a while */
                ngx_http_wsgi_interp_reap();
            }

            continue;
        }

        sched->head = ctx->step_next;

        if (sched->head == NULL) {
            sched->tail = &sched->head;
        }

        sched->queued--;
        sched->busy++;
        runner->busy = 1;

        if (ngx_http_wsgi_yields) {
            runner->started = ngx_http_wsgi_thread_clock();
        }

        (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

        if (!held) {
            ngx_http_wsgi_python_enter(ctx->interp);
            held = 1;
        }

        ngx_http_wsgi_step_exec(ctx, ctx->step);

        now = ngx_http_wsgi_yields ? ngx_http_wsgi_thread_clock() : 0;

        (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

        sched->busy--;
        runner->busy = 0;

        if (ngx_http_wsgi_yields) {
            sched->average -= sched->average / 8;
            sched->average += (now - runner->started) / 8;
            runner->started = 0;
        }

        notify = ngx_http_wsgi_channel_armed;
        ngx_http_wsgi_channel_armed = 0;

        ctx->step_next = ngx_http_wsgi_channel_done;
        ngx_http_wsgi_channel_done = ctx;

        (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

        if (notify) {
            ngx_http_wsgi_channel_notify(log);
        }
    }
}


static void
ngx_http_wsgi_runner_event_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_runner_t *runner = ev->data;

    ngx_queue_t             *q;
    ngx_http_wsgi_runner_t  *next;

    ngx_queue_remove(&runner->queue);

    /* unless the pool thread already took another runner that yields */

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    if (runner->yielding) {

        for (q = ngx_queue_head(&runner->sched->active);
             q != ngx_queue_sentinel(&runner->sched->active);
             q = ngx_queue_next(q))
        {
            next = ngx_queue_data(q, ngx_http_wsgi_runner_t, queue);

            if (next->tid == runner->tid && next->yielding) {
                runner->yielding = 0;
                break;
            }
        }

        if (runner->yielding) {
            ngx_http_wsgi_priority_runner(runner, 0);
        }
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    runner->next = runner->sched->free;
    runner->sched->free = runner;
}


void
ngx_http_wsgi_thread_complete(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_wsgi_sched_t  *sched;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "wsgi thread step %d done", ctx->step);

    r->main->blocked--;
    ctx->phase = NGX_HTTP_WSGI_PHASE_LOOP;

    sched = ngx_http_wsgi_sched_get(ctx->thread_pool, c->log);

    if (sched && --sched->away == 0 && sched->alive.timer_set) {
        ngx_del_timer(&sched->alive);
    }

    ngx_http_wsgi_step_complete(ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_wsgi_sched_alive_handler(ngx_event_t *ev)
{
    /* long steps: keep the worker from exiting under them */

    ngx_add_timer(ev, NGX_HTTP_WSGI_KEEP_ALIVE);
}


/* the request pool that listed them may be gone: they travel in a copy */

void
ngx_http_wsgi_thread_release(ngx_thread_pool_t *tp,
    ngx_http_wsgi_interp_t *interp, PyObject **objs, ngx_uint_t n,
    ngx_log_t *log)
{
    ngx_http_wsgi_sched_t  *sched;

    if (n == 0) {
        return;
    }

    sched = ngx_http_wsgi_sched_get(tp, log);

    if (sched == NULL) {
        ngx_http_wsgi_step_release_objs(interp, objs, n);
        return;
    }

    if (ngx_http_wsgi_objs_interp(&sched->objs, interp, log) != NGX_OK
        || ngx_http_wsgi_objs_add(&sched->objs, objs, n, log) != NGX_OK)
    {
        ngx_http_wsgi_step_release_objs(interp, objs, n);
        return;
    }

    if (!sched->kick.posted) {
        ngx_post_event(&sched->kick, &ngx_posted_events);
    }
}


static void
ngx_http_wsgi_sched_release(ngx_http_wsgi_sched_t *sched)
{
    ngx_http_wsgi_release_t  *rel;

    if (sched->objs.nelts == 0) {
        return;
    }

    rel = ngx_alloc(sizeof(ngx_http_wsgi_release_t)
                    + (sched->objs.nelts - 1) * sizeof(PyObject *),
                    ngx_cycle->log);

    if (rel == NULL) {
        ngx_http_wsgi_step_release_objs(sched->objs.interp, sched->objs.elts,
                                        sched->objs.nelts);
        sched->objs.nelts = 0;
        return;
    }

    rel->n = sched->objs.nelts;
    ngx_memcpy(rel->objs, sched->objs.elts,
               sched->objs.nelts * sizeof(PyObject *));
    sched->objs.nelts = 0;

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    rel->next = sched->releases;
    sched->releases = rel;

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
}
