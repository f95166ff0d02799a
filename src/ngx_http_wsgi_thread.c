
/*
 * nginx mod_wsgi: execution steps on nginx thread pools.
 *
 * Steps wait in a queue per pool, taken by "runners": thread tasks that
 * run queued steps one after another and exit when the queue is empty.
 * Only one thread can run Python at a time, so a new runner is posted only
 * when there is none, or when the oldest waiting step has waited 250 us
 * (the runners are blocked, e.g. waiting for a database); a busy worker
 * thus runs many steps per thread wake-up instead of waking a thread per
 * step that then waits for the GIL.  Finished steps go back to the event
 * loop through the worker's channel: a list the event loop looks at after
 * each round that queued steps, and an eventfd, written only when the
 * event loop has said it is going to sleep ("armed").
 *
 * The request is pinned while its step is away (r->main->blocked), and a
 * timer keeps a gracefully exiting worker alive until its steps are back.
 * The channel is in ngx_http_wsgi_channel.c.
 */


#include "ngx_http_wsgi_module.h"

#include <sched.h>

#include <sys/resource.h>


#define NGX_HTTP_WSGI_KEEP_ALIVE  3600000


#define NGX_HTTP_WSGI_STALE       250       /* us a step may wait */
#define NGX_HTTP_WSGI_RUNNERS     16        /* added at once, at most */
#define NGX_HTTP_WSGI_LINGER      10        /* ms a runner waits for work */
#define NGX_HTTP_WSGI_LINGER_MAX  100       /* ms, if nobody tells it */
#define NGX_HTTP_WSGI_SAMPLE_MIN  1000      /* us between CPU samples */
#define NGX_HTTP_WSGI_SAMPLE_MAX  20000     /* us, an older CPU sample is
                                               no measure of the moment */
#define NGX_HTTP_WSGI_LONG        2000      /* us, a step that long runs... */
#define NGX_HTTP_WSGI_LONG_AVG    1000      /* or steps that long, on average,
                                               make the pool let nginx go
                                               first, while it computes */
#define NGX_HTTP_WSGI_YIELD_LOOK  2         /* ms between looks at them */

#define NGX_HTTP_WSGI_MALLOC_WARM (1024 * 1024)  /* bytes, see below */


typedef struct ngx_http_wsgi_release_s  ngx_http_wsgi_release_t;

struct ngx_http_wsgi_release_s {
    ngx_http_wsgi_release_t *next;
    ngx_uint_t               n;
    PyObject                *objs[1];
};


/* a look at the CPU time of the pool threads */

typedef struct {
    uint64_t                 at;          /* us, monotonic; 0: none yet */
    uint64_t                 pool;        /* us of CPU, but the event loop's */
    uint64_t                 loop;        /* us of CPU, the event loop's */
} ngx_http_wsgi_sample_t;


typedef struct ngx_http_wsgi_sched_s  ngx_http_wsgi_sched_t;

typedef struct ngx_http_wsgi_runner_s  ngx_http_wsgi_runner_t;

struct ngx_http_wsgi_runner_s {
    ngx_thread_task_t        task;
    ngx_http_wsgi_sched_t   *sched;
    ngx_http_wsgi_runner_t  *next;        /* free list */
    ngx_queue_t              queue;       /* in sched->active */

    /* under the channel mutex */
    pid_t                    tid;         /* its thread, once it runs */
    ngx_uint_t               busy;        /* running a step */
    uint64_t                 started;     /* us, its step; 0 between steps */
    ngx_uint_t               yielding;    /* its thread under SCHED_IDLE */
};


/* the steps waiting for a pool; counters under the channel mutex */

struct ngx_http_wsgi_sched_s {
    ngx_thread_pool_t       *pool;
    ngx_http_wsgi_ctx_t     *head;
    ngx_http_wsgi_ctx_t    **tail;
    ngx_uint_t               queued;
    ngx_http_wsgi_release_t *releases;
    ngx_uint_t               runners;     /* posted, not yet returned */
    ngx_uint_t               busy;        /* running a step */
    ngx_uint_t               idle;        /* lingering for the next one */
    ngx_uint_t               retire;      /* lingering runners: return */
    ngx_uint_t               posted;      /* wakeups not yet taken */
    ngx_uint_t               priority;    /* of the runners' threads */
    uint64_t                 average;     /* us, the steps' recent length */
    ngx_uint_t               yielding;    /* runners go under SCHED_IDLE */
    sem_t                    wake;        /* wakes a lingering runner */
    ngx_event_t              timer;       /* looks for a stalled queue */
    ngx_event_t              kick;        /* after this event loop round */

    /* event loop only */
    ngx_queue_t              active;      /* runners posted, not back */
    ngx_msec_t               looked;      /* at long steps */
    ngx_event_t              linger;      /* retires idle runners */
    ngx_uint_t               kicked;      /* since the last linger timer */
    ngx_http_wsgi_runner_t  *free;
    ngx_uint_t               away;        /* steps not back yet */
    ngx_event_t              alive;       /* keeps an exiting worker */
    ngx_http_wsgi_objs_t     objs;        /* to release, this round */
    ngx_http_wsgi_sched_t   *next;
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
static uint64_t ngx_http_wsgi_thread_clock(void);
static ngx_int_t ngx_http_wsgi_thread_sample(ngx_http_wsgi_sample_t *sample,
    uint64_t now, uint64_t *interval, uint64_t *used, uint64_t *avail);
static ngx_uint_t ngx_http_wsgi_thread_computing(uint64_t now);
static ngx_uint_t ngx_http_wsgi_thread_running(void);
static void ngx_http_wsgi_sched_yield(ngx_http_wsgi_sched_t *sched);
static void ngx_http_wsgi_runner_policy(ngx_http_wsgi_runner_t *runner,
    ngx_uint_t yielding);
static void ngx_http_wsgi_thread_idle(ngx_log_t *log);
static void ngx_http_wsgi_thread_malloc(ngx_log_t *log);
static uint64_t ngx_http_wsgi_thread_cpu(clockid_t clock);


static ngx_http_wsgi_sched_t  *ngx_http_wsgi_scheds;

/* the event loop's last look at the CPU time, when steps wait */
static ngx_http_wsgi_sample_t  ngx_http_wsgi_sampled;
/* how many looks in a row found the runners blocked */
static ngx_uint_t            ngx_http_wsgi_sampled_calm;

/* "wsgi_thread_priority auto": the look at long steps, and whether the
   worker may take a thread back from SCHED_IDLE */
static ngx_http_wsgi_sample_t  ngx_http_wsgi_looked;
static ngx_uint_t            ngx_http_wsgi_yields;


/*
 * The master, with "wsgi_thread_priority auto": the workers lower a pool
 * thread to SCHED_IDLE while its steps compute long, and take it back
 * after.  Linux lets an unprivileged thread back from SCHED_IDLE only as
 * far as RLIMIT_NICE lets it lower its nice value (to 20 - the limit):
 * the limit is raised to the workers' own nice value, no further.
 */

ngx_int_t
ngx_http_wsgi_thread_init_module(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    int               nice;
    rlim_t            need;
    struct rlimit     rlim;
    ngx_core_conf_t  *ccf;

    if (wmcf->priority != NGX_HTTP_WSGI_PRIORITY_AUTO) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    nice = ccf->priority;

    if (nice == 0) {
        ngx_set_errno(0);
        nice = getpriority(PRIO_PROCESS, 0);

        if (nice == -1 && ngx_errno) {
            nice = 0;
        }
    }

    need = (rlim_t) (20 - nice);

    if (getrlimit(RLIMIT_NICE, &rlim) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wsgi: getrlimit(RLIMIT_NICE) failed");
        return NGX_OK;
    }

    if (rlim.rlim_cur >= need) {
        return NGX_OK;
    }

    rlim.rlim_cur = need;

    if (rlim.rlim_max < need) {
        rlim.rlim_max = need;
    }

    if (setrlimit(RLIMIT_NICE, &rlim) == -1) {
        /* not privileged: the workers find out, and say so */
        ngx_log_debug0(NGX_LOG_DEBUG_CORE, cycle->log, ngx_errno,
                       "wsgi: setrlimit(RLIMIT_NICE) failed");
    }

    return NGX_OK;
}


/* a scratch thread: may a thread of this worker go to SCHED_IDLE and back */

static void *
ngx_http_wsgi_thread_probe(void *data)
{
    ngx_err_t *err = data;

    struct sched_param  sp;

    ngx_memzero(&sp, sizeof(struct sched_param));

    if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1
        || sched_setscheduler(0, SCHED_OTHER, &sp) == -1)
    {
        *err = ngx_errno;
    }

    return NULL;
}


ngx_int_t
ngx_http_wsgi_thread_init(ngx_cycle_t *cycle, ngx_http_wsgi_main_conf_t *wmcf)
{
    int         rc;
    ngx_err_t   err;
    pthread_t   tid;

    ngx_http_wsgi_yields = 0;

    if (wmcf->pooled) {
        ngx_http_wsgi_thread_malloc(cycle->log);
    }

    if (wmcf->pooled && wmcf->priority == NGX_HTTP_WSGI_PRIORITY_AUTO) {

        /*
         * Whatever rlimits, capabilities or seccomp say: try, on a thread.
         * Not in a worker whose applications all run inline: once a
         * process has started a second thread, glibc wraps each recv(),
         * writev() and epoll_wait() in cancellation points and takes
         * malloc's locks, for good.
         */

        err = 0;

        rc = pthread_create(&tid, NULL, ngx_http_wsgi_thread_probe, &err);

        if (rc != 0) {
            err = rc;

        } else {
            (void) pthread_join(tid, NULL);
        }

        if (err) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, err,
                          "wsgi: pool threads cannot go to SCHED_IDLE and "
                          "back, \"wsgi_thread_priority auto\" works as "
                          "\"normal\"");
        } else {
            ngx_http_wsgi_yields = 1;
        }
    }

    return ngx_http_wsgi_channel_open(cycle);
}


/*
 * A worker whose Python runs on pool threads: glibc gives the top of a
 * heap back to the system once it passes M_TRIM_THRESHOLD, 128 KiB until
 * the process frees a block that was mmap()ed; from then on that
 * threshold is twice the size of the largest such block, and blocks up to
 * it come from the heaps (mallopt(3), the dynamic mmap threshold).  A
 * runner creates the bodies of all the requests of a round, and they are
 * released together: an arena that passes 128 KiB at each round shrinks,
 * and faults its pages in again at the next one.  Freeing a 1 MiB block
 * starts the thresholds where a busy server soon has them; unlike
 * mallopt(), it leaves them dynamic.
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
            ngx_http_wsgi_step_release_objs(sched->objs.elts,
                                            sched->objs.nelts);
        }

        sched->objs.nelts = 0;
    }

    ngx_http_wsgi_channel_close();
}


/*
 * nginx side: queues a step of ctx for its thread pool.  NGX_DECLINED: the
 * queue is full.
 */

ngx_int_t
ngx_http_wsgi_thread_post(ngx_http_wsgi_ctx_t *ctx, ngx_http_wsgi_step_e step,
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

    /*
     * Runners are woken once per round of the event loop, with all the
     * steps the round has queued, rather than once per step.
     */

    if (!sched->kick.posted) {
        ngx_post_event(&sched->kick, &ngx_posted_events);
    }

    ctx->running = 1;
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
    ngx_http_wsgi_sched_yield(sched);
}


/*
 * A runner is posted when there is none, or when a step has waited for the
 * busy ones for a while: then they are blocked, and the queue needs
 * another thread.  While steps wait, a timer looks again every ms.
 */

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
        /* a lingering runner takes the round's steps ... */
        taken = 1;
        wake = (sched->idle > sched->posted);

        if (wake
            && sched->queued > 1
            && sched->busy
            && ngx_http_wsgi_sched_stalled(sched, now))
        {
            /*
             * ... unless steps have waited while the busy runners are
             * blocked: the one woken would take a step and block too,
             * and the others would wait for a busy one to come back (a
             * sleep-10ms application's p99 was twice its sleep)
             */
            wake = ngx_min(sched->queued, sched->idle - sched->posted);
        }

        sched->posted += wake;

        /* steps the woken runners may leave for busy ones */
        more = (sched->queued > wake && sched->busy);

    } else if (waiting && sched->runners == sched->busy) {

        if (sched->runners == 0) {
            need = 1;

        } else if (ngx_http_wsgi_sched_stalled(sched, now)) {
            /* the runners are blocked: a thread for each waiting step */
            need = ngx_min(sched->queued, NGX_HTTP_WSGI_RUNNERS);
        }
    }

    sched->runners += need;

    if (need) {
        /* the next look at the CPU time starts after their start */
        ngx_http_wsgi_sampled.at = 0;
        ngx_http_wsgi_sampled_calm = 0;
    }

    if ((taken || need) && sched->queued && sched->busy == 0) {

        /*
         * An idle pool starts on the round's steps, which are often done
         * by the next round (one CPU: the runner preempts the event
         * loop): the event loop looks for them once without sleeping, and
         * the runners need not write the eventfd.  Not while other steps
         * run: they may take long, and an event loop that never sleeps
         * gets the CPU late (its static files too).
         */

        ngx_http_wsgi_channel_armed = 0;
        look = 1;
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    if (look) {
        ngx_http_wsgi_channel_look_later();
    }

    /*
     * Posted after the unlock: a runner woken while the mutex is still held
     * would only block on it again (one CPU: two more switches).  A
     * semaphore, not a condition variable: glibc's pthread_cond_signal()
     * may wait for a runner woken earlier to run first, and that runner
     * may be waiting for the CPU behind a busy Python thread.
     */

    for (n = 0; n < wake; n++) {
        (void) sem_post(&sched->wake);
    }

    /*
     * A runner woken on the event loop's CPU has usually run the round's
     * steps before sem_post() returns: their responses go now, while
     * their data is in the cache, rather than after the next poll (a
     * 16 KiB echo cost 1% more at 10 connections, 7% at 50; hello world
     * 2%).  Once per round of the event loop: the output of steps that
     * these responses queue waits for the next round, so that other
     * connections get their turn.
     */

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

    /*
     * Steps that nobody was started or woken for wait for a busy runner:
     * look again in a millisecond whether those are blocked.  (Not
     * otherwise: a timer that short makes the event loop's every sleep
     * reprogram the timer hardware, which in a virtual machine is not
     * cheap.)
     */

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


/*
 * Under the channel mutex: the oldest step has waited long enough for the
 * busy runners, and those are blocked rather than computing.
 */

static ngx_uint_t
ngx_http_wsgi_sched_stalled(ngx_http_wsgi_sched_t *sched, uint64_t now)
{
    return sched->head
           && now - sched->head->queued >= NGX_HTTP_WSGI_STALE
           && !ngx_http_wsgi_thread_computing(now);
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

    ngx_http_wsgi_sched_yield(sched);

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

    /* one per pool for the life of the worker */

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


/* the event loop: a stalled queue gets another runner */

static void
ngx_http_wsgi_sched_timer_handler(ngx_event_t *ev)
{
    ngx_http_wsgi_sched_kick(ev->data);
}


/* a pool thread: runs queued steps until there are none */

static void
ngx_http_wsgi_runner_handler(void *data, ngx_log_t *log)
{
    ngx_http_wsgi_runner_t *runner = data;

    uint64_t                  now;
    ngx_uint_t                notify, i, lingered, woken;
    PyThreadState            *ts;
    struct timespec           until;
    ngx_http_wsgi_ctx_t      *ctx;
    ngx_http_wsgi_sched_t    *sched;
    ngx_http_wsgi_release_t  *rel, *next;

    sched = runner->sched;
    lingered = 0;
    ts = NULL;

    if (sched->priority == NGX_HTTP_WSGI_PRIORITY_IDLE) {
        ngx_http_wsgi_thread_idle(log);
    }

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    runner->tid = gettid();

    if (ngx_http_wsgi_yields && sched->yielding) {
        /* the pool computes: a new runner yields from the start */
        ngx_http_wsgi_runner_policy(runner, 1);
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    for ( ;; ) {
        (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

        rel = sched->releases;
        sched->releases = NULL;

        ctx = sched->head;

        if (ctx == NULL && rel == NULL && ts) {

            /* the GIL is kept from one queued step to the next only */

            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

            ngx_http_wsgi_python_leave(ts);
            ts = NULL;

            continue;
        }

        if (ctx == NULL && rel == NULL) {

            /*
             * Linger a little before returning the thread: the next step
             * is often on its way (a client sends its next request), and
             * a signal is cheaper than a new task.
             */

            /*
             * The event loop retires idle runners after NGX_HTTP_WSGI_LINGER
             * ms; the long timeout is for a worker that exits without
             * telling them.  (A timer that expires before the next tick
             * costs a reprogramming of the timer hardware, per wait.)
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

        /*
         * The releases before the steps: the bodies of the last round go
         * back to malloc, and this round's take their memory, still in
         * the cache, rather than more of the heap (a 16 KiB echo at 50
         * connections cost 7% more the other way round).
         */

        if (rel) {
            (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

            if (ts == NULL) {
                ts = ngx_http_wsgi_python_enter();
            }

            for ( /* void */ ; rel; rel = next) {
                next = rel->next;

                for (i = 0; i < rel->n; i++) {
                    Py_DECREF(rel->objs[i]);
                }

                ngx_free(rel);
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

        if (ts == NULL) {
            ts = ngx_http_wsgi_python_enter();
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

    /*
     * The thread goes back to the pool as it came, unless it already runs
     * another runner that yields too (the pool thread took that one before
     * this event got here).
     */

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
            ngx_http_wsgi_runner_policy(runner, 0);
        }
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);

    runner->next = runner->sched->free;
    runner->sched->free = runner;
}


/* the event loop: a step is back */

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
    ctx->running = 0;

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


/*
 * Releases bytes objects the request no longer needs on a pool thread:
 * the request pool that listed them is gone by the time a runner gets to
 * them, so they travel in a copy.
 */

void
ngx_http_wsgi_thread_release(ngx_thread_pool_t *tp, PyObject **objs,
    ngx_uint_t n, ngx_log_t *log)
{
    ngx_http_wsgi_sched_t  *sched;

    if (n == 0) {
        return;
    }

    sched = ngx_http_wsgi_sched_get(tp, log);

    if (sched == NULL) {
        ngx_http_wsgi_step_release_objs(objs, n);
        return;
    }

    /* collected for the round: one batch, handed over with its steps */

    if (ngx_http_wsgi_objs_add(&sched->objs, objs, n, log) != NGX_OK) {
        /* out of memory: release them here rather than leak them */
        ngx_http_wsgi_step_release_objs(objs, n);
        return;
    }

    /* not urgent: any runner that comes by takes them */

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
        ngx_http_wsgi_step_release_objs(sched->objs.elts,
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


static uint64_t
ngx_http_wsgi_thread_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/*
 * The event loop, when steps wait for busy runners: whether the runners
 * are computing rather than blocked.  Python runs one thread at a time;
 * when the pool's threads used most of the CPU the event loop left them
 * since the last look, another runner would only wait for the GIL (and
 * the busy ones would lose time handing it over).  Unknown at the first
 * look, or after a long pause: the caller looks again in a moment.
 */

static ngx_uint_t
ngx_http_wsgi_thread_computing(uint64_t now)
{
    uint64_t  used, interval, avail;

    if (now - ngx_http_wsgi_sampled.at < NGX_HTTP_WSGI_SAMPLE_MIN) {
        goto done;
    }

    /*
     * Blocked if they used less than three quarters of what they had (the
     * rest goes to the kernel and GIL handovers), and had a quarter at
     * least: an event loop busy with its own connections leaves them none
     * to show.
     */

    if (ngx_http_wsgi_thread_sample(&ngx_http_wsgi_sampled, now, &interval,
                                    &used, &avail)
        != NGX_OK
        || interval > NGX_HTTP_WSGI_SAMPLE_MAX
        || used * 4 >= avail * 3
        || avail * 4 < interval)
    {
        ngx_http_wsgi_sampled_calm = 0;

    } else if (++ngx_http_wsgi_sampled_calm >= 2
               && ngx_http_wsgi_thread_running())
    {
        /*
         * The CPU time a runner did not get looks like the time it did
         * not want: another process on its CPU, or a hypervisor that took
         * the virtual CPU, would have each step queued behind a computing
         * one get a thread of its own, to wait for the GIL
         */

        ngx_http_wsgi_sampled_calm = 0;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "wsgi runners blocked: %ui times in a row",
                   ngx_http_wsgi_sampled_calm);

done:

    /* twice in a row: a thread that just started is often slow to */

    return (ngx_http_wsgi_sampled_calm < 2);
}


/*
 * The event loop, under the channel mutex: whether a busy runner of any
 * pool is on a CPU or waits for one (its thread's state in /proc is "R"),
 * rather than sleeping; one GIL serves them all.  Looks at no more than
 * NGX_HTTP_WSGI_RUNNERS threads (5 us each); without /proc, none runs.
 */

static ngx_uint_t
ngx_http_wsgi_thread_running(void)
{
    u_char                  *p;
    ssize_t                  n;
    ngx_fd_t                 fd;
    ngx_uint_t               looks;
    ngx_queue_t             *q;
    ngx_http_wsgi_sched_t   *sched;
    ngx_http_wsgi_runner_t  *runner;
    u_char                   path[sizeof("/proc/self/task//stat")
                                  + NGX_INT64_LEN];
    u_char                   buf[512];

    looks = 0;

    for (sched = ngx_http_wsgi_scheds; sched; sched = sched->next) {

        for (q = ngx_queue_head(&sched->active);
             q != ngx_queue_sentinel(&sched->active);
             q = ngx_queue_next(q))
        {
            runner = ngx_queue_data(q, ngx_http_wsgi_runner_t, queue);

            if (!runner->busy || runner->tid == 0) {
                continue;
            }

            if (looks++ == NGX_HTTP_WSGI_RUNNERS) {
                return 0;
            }

            (void) ngx_sprintf(path, "/proc/self/task/%P/stat%Z",
                               (ngx_pid_t) runner->tid);

            fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
            if (fd == NGX_INVALID_FILE) {
                return 0;
            }

            n = read(fd, buf, sizeof(buf));

            (void) ngx_close_file(fd);

            /* "tid (comm) state ...": the name may hold ")" itself */

            for (p = buf + ngx_max(n, 0); p > buf; p--) {
                if (p[-1] == ')') {
                    break;
                }
            }

            if (p > buf && buf + n - p >= 2 && p[1] == 'R') {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * The event loop, with "wsgi_thread_priority auto": while the pool's steps
 * compute long, its runners go to SCHED_IDLE.  On a CPU it shares with the
 * event loop, a Python thread at the same priority keeps the event loop
 * (and its static files) waiting for up to a scheduler tick; under
 * SCHED_IDLE it gives way whenever the event loop wakes.  Short steps keep
 * the normal policy: there the event loop waiting its turn lets it take
 * many events per wake-up, and yielding at once would cost a switch for
 * each.  Long steps that only wait (a database) use no CPU: no change.
 */

static void
ngx_http_wsgi_sched_yield(ngx_http_wsgi_sched_t *sched)
{
    uint64_t                 now, interval, used, avail;
    ngx_uint_t               busy, longest;
    ngx_queue_t             *q;
    ngx_http_wsgi_runner_t  *runner;

    if (!ngx_http_wsgi_yields
        || ngx_queue_empty(&sched->active)
        || ngx_current_msec - sched->looked < NGX_HTTP_WSGI_YIELD_LOOK)
    {
        return;
    }

    sched->looked = ngx_current_msec;

    /* the pool computes: it used half the time the event loop left it */

    now = ngx_http_wsgi_thread_clock();

    busy = (ngx_http_wsgi_thread_sample(&ngx_http_wsgi_looked, now,
                                        &interval, &used, &avail)
            == NGX_OK
            && used && used * 2 >= avail);

    (void) pthread_mutex_lock(&ngx_http_wsgi_channel_mutex);

    longest = 0;

    for (q = ngx_queue_head(&sched->active);
         q != ngx_queue_sentinel(&sched->active);
         q = ngx_queue_next(q))
    {
        runner = ngx_queue_data(q, ngx_http_wsgi_runner_t, queue);

        if (runner->started && now - runner->started >= NGX_HTTP_WSGI_LONG) {
            longest = 1;
        }
    }

    if (!busy) {
        sched->yielding = 0;

    } else if (longest || sched->average >= NGX_HTTP_WSGI_LONG_AVG) {
        sched->yielding = 1;

    } else if (sched->average < NGX_HTTP_WSGI_LONG_AVG / 2) {
        sched->yielding = 0;
    }

    for (q = ngx_queue_head(&sched->active);
         q != ngx_queue_sentinel(&sched->active);
         q = ngx_queue_next(q))
    {
        runner = ngx_queue_data(q, ngx_http_wsgi_runner_t, queue);

        if (runner->tid && runner->yielding != sched->yielding) {
            ngx_http_wsgi_runner_policy(runner, sched->yielding);
        }
    }

    (void) pthread_mutex_unlock(&ngx_http_wsgi_channel_mutex);
}


/*
 * The event loop: a new look at the CPU time of the pool threads (the
 * process's but the event loop's), and the time since the previous look,
 * what they used of it, and what the event loop left them ("avail").
 * NGX_DECLINED at the first look.
 */

static ngx_int_t
ngx_http_wsgi_thread_sample(ngx_http_wsgi_sample_t *sample, uint64_t now,
    uint64_t *interval, uint64_t *used, uint64_t *avail)
{
    uint64_t   loop, pool;
    ngx_int_t  rc;

    loop = ngx_http_wsgi_thread_cpu(CLOCK_THREAD_CPUTIME_ID);
    pool = ngx_http_wsgi_thread_cpu(CLOCK_PROCESS_CPUTIME_ID) - loop;

    rc = NGX_DECLINED;

    if (sample->at) {
        *interval = now - sample->at;
        *avail = *interval - ngx_min(*interval, loop - sample->loop);

        /* the two clocks are read one after the other: "pool" may step
           back by a microsecond */

        *used = (pool > sample->pool) ? pool - sample->pool : 0;

        rc = NGX_OK;
    }

    sample->at = now;
    sample->pool = pool;
    sample->loop = loop;

    return rc;
}


/*
 * Under the channel mutex, the event loop or a runner starting: a runner's
 * thread gives way to the event loop, or no longer.
 */

static void
ngx_http_wsgi_runner_policy(ngx_http_wsgi_runner_t *runner,
    ngx_uint_t yielding)
{
    struct sched_param  sp;

    ngx_memzero(&sp, sizeof(struct sched_param));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "wsgi runner thread %P yields: %ui",
                   (ngx_pid_t) runner->tid, yielding);

    if (sched_setscheduler(runner->tid, yielding ? SCHED_IDLE : SCHED_OTHER,
                           &sp)
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "wsgi: sched_setscheduler(%P, %s) failed",
                      (ngx_pid_t) runner->tid,
                      yielding ? "SCHED_IDLE" : "SCHED_OTHER");

        if (!yielding) {
            /* never again: a thread would stay behind every other */
            ngx_http_wsgi_yields = 0;
            runner->yielding = 0;
        }

        return;
    }

    runner->yielding = yielding;
}


/* CPU time in us */

static uint64_t
ngx_http_wsgi_thread_cpu(clockid_t clock)
{
    struct timespec  ts;

    if (clock_gettime(clock, &ts) == -1) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/*
 * A pool thread, with "wsgi_thread_priority idle": it gets the CPU when
 * nothing else wants it, nginx's event loop first.  Linux does not let an
 * unprivileged thread back, so the thread keeps it for its other tasks.
 */

static void
ngx_http_wsgi_thread_idle(ngx_log_t *log)
{
    static ngx_uint_t   failed;
    struct sched_param  sp;

    ngx_memzero(&sp, sizeof(struct sched_param));

    if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1 && !failed) {
        failed = 1;
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "wsgi: sched_setscheduler(SCHED_IDLE) failed");
    }
}
