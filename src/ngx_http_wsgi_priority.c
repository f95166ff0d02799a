
/*
 * nginx mod_wsgi: wsgi_thread_priority, and whether busy runners compute.
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


typedef struct {
    uint64_t                 at;          /* us, monotonic; 0: none yet */
    uint64_t                 pool;        /* us of CPU, but the event loop's */
    uint64_t                 loop;        /* us of CPU, the event loop's */
} ngx_http_wsgi_sample_t;


static ngx_int_t ngx_http_wsgi_priority_sample(ngx_http_wsgi_sample_t *sample,
    uint64_t now, uint64_t *interval, uint64_t *used, uint64_t *avail);
static ngx_uint_t ngx_http_wsgi_priority_running(void);
static uint64_t ngx_http_wsgi_priority_cpu(clockid_t clock);


static ngx_http_wsgi_sample_t  ngx_http_wsgi_sampled;     /* steps wait */
static ngx_uint_t            ngx_http_wsgi_sampled_calm; /* blocked, looks */

/* "auto": the look at long steps, and the way back from SCHED_IDLE */
static ngx_http_wsgi_sample_t  ngx_http_wsgi_looked;
ngx_uint_t                   ngx_http_wsgi_yields;


/* RLIMIT_NICE bounds the way back from SCHED_IDLE: the master raises it */

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
         * rlimits, capabilities or seccomp may say no: try; not inline
         * only, as a second thread costs glibc's locks for good
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


/* busy runners compute rather than block; unknown at a first look */

ngx_uint_t
ngx_http_wsgi_priority_computing(uint64_t now)
{
    uint64_t  used, interval, avail;

    if (now - ngx_http_wsgi_sampled.at < NGX_HTTP_WSGI_SAMPLE_MIN) {
        goto done;
    }

    /*
     * blocked: under three quarters of what they had, and a quarter at
     * least (a busy event loop leaves them none to show)
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
        /* CPU stolen (another process, a hypervisor) is not time unwanted */

        ngx_http_wsgi_sampled_calm = 0;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "wsgi runners blocked: %ui times in a row",
                   ngx_http_wsgi_sampled_calm);

done:

    /* twice in a row: a thread that just started is often slow to */

    return (ngx_http_wsgi_sampled_calm < 2);
}


/* under the channel mutex: a busy runner of any pool is "R" in /proc */

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


/* "auto": long computing steps yield to the loop, short ones would thrash */

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


/* the pools' CPU time since the last look, and what the loop left them */

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

        /* read one after the other: "pool" may step back by a us */

        *used = (pool > sample->pool) ? pool - sample->pool : 0;

        rc = NGX_OK;
    }

    sample->at = now;
    sample->pool = pool;
    sample->loop = loop;

    return rc;
}


/* under the channel mutex: a runner's thread gives way, or no longer */

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


static uint64_t
ngx_http_wsgi_priority_cpu(clockid_t clock)
{
    struct timespec  ts;

    if (clock_gettime(clock, &ts) == -1) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* "idle": an unprivileged thread cannot come back, so it stays there */

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
