
/*
 * nginx mod_wsgi: the priority of the pool threads, and how much CPU time
 * they use.
 *
 * "wsgi_thread_priority idle" puts a runner's thread under SCHED_IDLE for
 * good; "auto" puts the runners of a pool under SCHED_IDLE while its steps
 * compute long, and takes them back after (the master raises RLIMIT_NICE
 * so that the workers may).  The same looks at the CPU time of the pool
 * threads, and at their state in /proc/self/task, tell the scheduler
 * whether busy runners compute, or are blocked and the queue needs another
 * runner.
 */


#include "ngx_http_wsgi_module.h"

#include <sched.h>

#include <sys/resource.h>


#define NGX_HTTP_WSGI_SAMPLE_MIN  1000      /* us between CPU samples */
#define NGX_HTTP_WSGI_SAMPLE_MAX  20000     /* us, an older CPU sample is
                                               no measure of the moment */
#define NGX_HTTP_WSGI_LONG        2000      /* us, a step that long runs... */
#define NGX_HTTP_WSGI_LONG_AVG    1000      /* or steps that long, on average,
                                               make the pool let nginx go
                                               first, while it computes */
#define NGX_HTTP_WSGI_YIELD_LOOK  2         /* ms between looks at them */


/* a look at the CPU time of the pool threads */

typedef struct {
    uint64_t                 at;          /* us, monotonic; 0: none yet */
    uint64_t                 pool;        /* us of CPU, but the event loop's */
    uint64_t                 loop;        /* us of CPU, the event loop's */
} ngx_http_wsgi_sample_t;


static ngx_int_t ngx_http_wsgi_priority_sample(ngx_http_wsgi_sample_t *sample,
    uint64_t now, uint64_t *interval, uint64_t *used, uint64_t *avail);
static ngx_uint_t ngx_http_wsgi_priority_running(void);
static uint64_t ngx_http_wsgi_priority_cpu(clockid_t clock);


/* the event loop's last look at the CPU time, when steps wait */
static ngx_http_wsgi_sample_t  ngx_http_wsgi_sampled;
/* how many looks in a row found the runners blocked */
static ngx_uint_t            ngx_http_wsgi_sampled_calm;

/* "wsgi_thread_priority auto": the look at long steps, and whether the
   worker may take a thread back from SCHED_IDLE */
static ngx_http_wsgi_sample_t  ngx_http_wsgi_looked;
ngx_uint_t                   ngx_http_wsgi_yields;


/*
 * The master, with "wsgi_thread_priority auto": the workers lower a pool
 * thread to SCHED_IDLE while its steps compute long, and take it back
 * after.  Linux lets an unprivileged thread back from SCHED_IDLE only as
 * far as RLIMIT_NICE lets it lower its nice value (to 20 - the limit):
 * the limit is raised to the workers' own nice value, no further.
 */

ngx_int_t
ngx_http_wsgi_priority_init_module(ngx_cycle_t *cycle,
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
ngx_http_wsgi_priority_probe(void *data)
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


void
ngx_http_wsgi_priority_init(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    int        rc;
    ngx_err_t  err;
    pthread_t  tid;

    ngx_http_wsgi_yields = 0;

    if (wmcf->pooled && wmcf->priority == NGX_HTTP_WSGI_PRIORITY_AUTO) {

        /*
         * Whatever rlimits, capabilities or seccomp say: try, on a thread.
         * Not in a worker whose applications all run inline: once a
         * process has started a second thread, glibc wraps each recv(),
         * writev() and epoll_wait() in cancellation points and takes
         * malloc's locks, for good.
         */

        err = 0;

        rc = pthread_create(&tid, NULL, ngx_http_wsgi_priority_probe, &err);

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
}


/* the scheduler adds runners: the next look starts after their start */

void
ngx_http_wsgi_priority_restart(void)
{
    ngx_http_wsgi_sampled.at = 0;
    ngx_http_wsgi_sampled_calm = 0;
}


/*
 * The event loop, when steps wait for busy runners: whether the runners
 * are computing rather than blocked.  Python runs one thread at a time;
 * when the pool's threads used most of the CPU the event loop left them
 * since the last look, another runner would only wait for the GIL (and
 * the busy ones would lose time handing it over).  Unknown at the first
 * look, or after a long pause: the caller looks again in a moment.
 */

ngx_uint_t
ngx_http_wsgi_priority_computing(uint64_t now)
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

    if (ngx_http_wsgi_priority_sample(&ngx_http_wsgi_sampled, now, &interval,
                                    &used, &avail)
        != NGX_OK
        || interval > NGX_HTTP_WSGI_SAMPLE_MAX
        || used * 4 >= avail * 3
        || avail * 4 < interval)
    {
        ngx_http_wsgi_sampled_calm = 0;

    } else if (++ngx_http_wsgi_sampled_calm >= 2
               && ngx_http_wsgi_priority_running())
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
ngx_http_wsgi_priority_running(void)
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

void
ngx_http_wsgi_priority_yield(ngx_http_wsgi_sched_t *sched)
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

    busy = (ngx_http_wsgi_priority_sample(&ngx_http_wsgi_looked, now,
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
            ngx_http_wsgi_priority_runner(runner, sched->yielding);
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
ngx_http_wsgi_priority_sample(ngx_http_wsgi_sample_t *sample, uint64_t now,
    uint64_t *interval, uint64_t *used, uint64_t *avail)
{
    uint64_t   loop, pool;
    ngx_int_t  rc;

    loop = ngx_http_wsgi_priority_cpu(CLOCK_THREAD_CPUTIME_ID);
    pool = ngx_http_wsgi_priority_cpu(CLOCK_PROCESS_CPUTIME_ID) - loop;

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

void
ngx_http_wsgi_priority_runner(ngx_http_wsgi_runner_t *runner,
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
ngx_http_wsgi_priority_cpu(clockid_t clock)
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

void
ngx_http_wsgi_priority_idle(ngx_log_t *log)
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
