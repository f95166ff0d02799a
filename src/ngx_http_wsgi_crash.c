
/*
 * nginx mod_wsgi: crash containment.  A shared memory zone, kept by the
 * master across respawns, tells a respawned worker what the dead one was
 * importing or serving.  An application whose import killed a worker gets
 * 503 until a probe (probe.c) imports it in a process of its own without
 * dying; the retry delay doubles with each crash.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_CRASH_WORKERS    64     /* workers with records */
#define NGX_HTTP_WSGI_CRASH_STEPS      32     /* step records per worker */
#define NGX_HTTP_WSGI_CRASH_METHOD     16
#define NGX_HTTP_WSGI_CRASH_URI        128
#define NGX_HTTP_WSGI_CRASH_DELAY      1000   /* ms */
#define NGX_HTTP_WSGI_CRASH_MAX_DELAY  60000  /* ms */
#define NGX_HTTP_WSGI_CRASH_ALTSTACK   65536  /* the signal stack */

/* nginx's master does not respawn a worker that exits with this status */
#define NGX_HTTP_WSGI_CRASH_FATAL      2
#define NGX_HTTP_WSGI_CRASH_NOT_FATAL  1


/* what a thread of a worker is doing: pid 0 when nothing */
typedef struct {
    volatile ngx_pid_t             pid;
    volatile ngx_uint_t            how;
    ngx_uint_t                     app;       /* index */
    ngx_uint_t                     importing; /* the step imports app */
    ngx_http_wsgi_ctx_t           *ctx;       /* the writer's, while pid */
    u_char                         method[NGX_HTTP_WSGI_CRASH_METHOD];
    u_char                         uri[NGX_HTTP_WSGI_CRASH_URI];
} ngx_http_wsgi_crash_slot_t;


typedef struct {
    ngx_http_wsgi_crash_slot_t     import;    /* outside steps: at start */
    ngx_atomic_t                   nsteps;    /* slots given to threads */
    ngx_http_wsgi_crash_slot_t     steps[NGX_HTTP_WSGI_CRASH_STEPS];
} ngx_http_wsgi_crash_worker_t;


/*
 * An application's containment, under the zone's mutex (crashes is also
 * read without it):
 *   crashes 0             nothing contained;
 *   crashes, no probe     503; past next, a request forks a probe;
 *   probe, not done       503;
 *   probe done            the import returned: crashes 0; it died: one
 *                         crash more, the delay doubled;
 *   probe gone, not done  its worker died with it: no probe.
 * outcome is written by the probe's processes, done last.
 */
typedef struct {
    volatile ngx_uint_t            crashes;   /* 0: nothing to contain */
    ngx_pid_t                      pid;       /* the last process killed */
    ngx_uint_t                     how;
    ngx_msec_t                     delay;
    uint64_t                       next;      /* ms, monotonic */

    ngx_pid_t                      probe;     /* -1: being forked */
    ngx_pid_t                      prober;    /* the worker that forks */
    uint64_t                       probe_start;
    ngx_http_wsgi_probe_t          outcome;   /* the probe's, probe.c */
} ngx_http_wsgi_crash_app_t;


typedef struct {
    ngx_slab_pool_t               *shpool;
    ngx_uint_t                     napps;
    ngx_http_wsgi_crash_app_t     *apps;
    ngx_http_wsgi_crash_worker_t   workers[NGX_HTTP_WSGI_CRASH_WORKERS];
} ngx_http_wsgi_crash_shm_t;


static ngx_int_t ngx_http_wsgi_crash_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_wsgi_crash_died(ngx_http_wsgi_crash_slot_t *s,
    ngx_uint_t import, ngx_log_t *log);
static u_char *ngx_http_wsgi_crash_how(u_char *buf, u_char *last,
    ngx_uint_t how);
static void ngx_http_wsgi_crash_describe(ngx_http_wsgi_crash_slot_t *s);
static void ngx_http_wsgi_crash_signals(ngx_log_t *log);
static void ngx_http_wsgi_crash_altstack(ngx_log_t *log);
static void ngx_http_wsgi_crash_signal(int signo);
static void ngx_http_wsgi_crash_note(ngx_uint_t how);
static PyObject *ngx_http_wsgi_crash_exit(PyObject *self, PyObject *arg);
static uint64_t ngx_http_wsgi_crash_clock(void);


/* this worker's: NULL in the master, or without applications */
static ngx_http_wsgi_crash_shm_t     *ngx_http_wsgi_crash_shm;
static ngx_http_wsgi_crash_worker_t  *ngx_http_wsgi_crash_worker;
static ngx_http_wsgi_app_t          **ngx_http_wsgi_crash_apps;
static u_char                        *ngx_http_wsgi_crash_loaded;

/* the last probe this worker forked, until it is reaped */
static ngx_pid_t                      ngx_http_wsgi_crash_forked;

/* in a probe that imports: where how it dies is noted */
static volatile ngx_uint_t           *ngx_http_wsgi_crash_noted;

/* a fault while the fault is noted goes straight to the previous action */
static volatile sig_atomic_t          ngx_http_wsgi_crash_noting;

#define ngx_http_wsgi_crash_thread_local                                      \
    static __thread __attribute__((tls_model("initial-exec")))

/* a thread past the records gets none (noslot) */
ngx_http_wsgi_crash_thread_local
    ngx_http_wsgi_crash_slot_t  *ngx_http_wsgi_crash_slot;
ngx_http_wsgi_crash_thread_local
    ngx_uint_t                   ngx_http_wsgi_crash_noslot;

static int  ngx_http_wsgi_crash_signos[] = {
    SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT
};

static struct sigaction  ngx_http_wsgi_crash_saved[
    sizeof(ngx_http_wsgi_crash_signos) / sizeof(int)];


static PyMethodDef  ngx_http_wsgi_crash_exit_def = {
    "_exit", ngx_http_wsgi_crash_exit, METH_O,
    "Exit the process with the given status, without cleanup.\n\n"
    "nginx mod_wsgi: status 2 (which nginx's master takes for a worker\n"
    "that must not be respawned) becomes 1."
};


ngx_int_t
ngx_http_wsgi_crash_conf(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf)
{
    size_t           size;
    ngx_str_t        name = ngx_string("wsgi_crash");
    ngx_shm_zone_t  *zone;

    size = sizeof(ngx_http_wsgi_crash_shm_t)
           + wmcf->apps.nelts * sizeof(ngx_http_wsgi_crash_app_t);

    /* the slab allocator's own pages and page descriptors */

    size = ngx_align(2 * size, ngx_pagesize) + 8 * ngx_pagesize;

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_wsgi_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_wsgi_crash_init_zone;
    zone->data = wmcf;

    /* a new configuration starts afresh; old workers keep their zone */
    zone->noreuse = 1;

    wmcf->crash = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_crash_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_wsgi_crash_shm_t   *shm;
    ngx_http_wsgi_main_conf_t   *wmcf;

    wmcf = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    shm = ngx_slab_calloc(shpool, sizeof(ngx_http_wsgi_crash_shm_t)
                                  + wmcf->apps.nelts
                                    * sizeof(ngx_http_wsgi_crash_app_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->shpool = shpool;
    shm->napps = wmcf->apps.nelts;
    shm->apps = (ngx_http_wsgi_crash_app_t *) &shm[1];

    zone->data = shm;

    return NGX_OK;
}


/* an import the previous worker died in counts against the application */

void
ngx_http_wsgi_crash_init_process(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    ngx_pid_t                      pid;
    ngx_uint_t                     i, app;
    ngx_http_wsgi_crash_slot_t    *s;
    ngx_http_wsgi_crash_worker_t  *w;

    if (wmcf->crash == NULL) {
        return;
    }

    ngx_http_wsgi_crash_shm = wmcf->crash->data;
    ngx_http_wsgi_crash_apps = wmcf->apps.elts;

    ngx_http_wsgi_crash_loaded = ngx_pcalloc(cycle->pool, wmcf->apps.nelts);
    if (ngx_http_wsgi_crash_loaded == NULL) {
        ngx_http_wsgi_crash_shm = NULL;
        return;
    }

    if (ngx_worker >= NGX_HTTP_WSGI_CRASH_WORKERS) {
        /* applications that crashed are still contained */
        return;
    }

    w = &ngx_http_wsgi_crash_shm->workers[ngx_worker];

    /* the request that imported the script is told of as the import */

    pid = w->import.pid;
    app = w->import.app;

    ngx_http_wsgi_crash_died(&w->import, 1, cycle->log);

    for (i = 0; i < NGX_HTTP_WSGI_CRASH_STEPS; i++) {
        s = &w->steps[i];

        if (s->pid == pid && s->app == app) {
            s->pid = 0;
            continue;
        }

        ngx_http_wsgi_crash_died(s, s->importing, cycle->log);
    }

    w->nsteps = 0;

    ngx_http_wsgi_crash_worker = w;

    ngx_http_wsgi_crash_signals(cycle->log);
}


static void
ngx_http_wsgi_crash_died(ngx_http_wsgi_crash_slot_t *s, ngx_uint_t import,
    ngx_log_t *log)
{
    u_char                     *p;
    uint64_t                    now;
    ngx_http_wsgi_app_t        *app;
    ngx_http_wsgi_crash_app_t  *a;
    u_char                      how[64];

    if (s->pid == 0 || s->pid == ngx_pid
        || s->app >= ngx_http_wsgi_crash_shm->napps)
    {
        s->pid = 0;
        return;
    }

    app = ngx_http_wsgi_crash_apps[s->app];

    p = ngx_http_wsgi_crash_how(how, how + sizeof(how) - 1, s->how);
    *p = '\0';

    if (!import) {
        if (s->method[0] == '\0') {
            /* killed (SIGKILL) before it could say which request */
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "wsgi: worker process %P died%s while running "
                          "\"%s\"", s->pid, how, app->path.data);

        } else {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "wsgi: worker process %P died%s while running "
                          "\"%s\" for the request \"%s %s\"",
                          s->pid, how, app->path.data, s->method, s->uri);
        }

        s->pid = 0;
        return;
    }

    a = &ngx_http_wsgi_crash_shm->apps[s->app];
    now = ngx_http_wsgi_crash_clock();

    ngx_shmtx_lock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    /* workers dying together at start: one delay; after a probe: doubled */

    if (a->delay == 0) {
        a->delay = NGX_HTTP_WSGI_CRASH_DELAY;

    } else if (a->crashes == 0) {
        a->delay = ngx_min(2 * a->delay, NGX_HTTP_WSGI_CRASH_MAX_DELAY);
    }

    a->crashes++;
    a->pid = s->pid;
    a->how = s->how;

    a->next = now + a->delay;

    ngx_shmtx_unlock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "wsgi: worker process %P died%s while importing script "
                  "\"%s\"; its requests get 503 until an import returns, "
                  "the next one in %Mms",
                  s->pid, how, app->path.data, a->delay);

    s->pid = 0;
}


/* not imported when a worker starts */

ngx_uint_t
ngx_http_wsgi_crash_contained(ngx_http_wsgi_app_t *app)
{
    if (ngx_http_wsgi_crash_shm == NULL) {
        return 0;
    }

    return (ngx_http_wsgi_crash_shm->apps[app->index].crashes != 0);
}


static u_char *
ngx_http_wsgi_crash_how(u_char *buf, u_char *last, ngx_uint_t how)
{
    ngx_uint_t  value;

    value = how & NGX_HTTP_WSGI_CRASH_VALUE;

    if (how & NGX_HTTP_WSGI_CRASH_SIGNAL) {
        return ngx_slprintf(buf, last, " on signal %ui", value);
    }

    if (how & NGX_HTTP_WSGI_CRASH_EXIT) {
        if (value == NGX_HTTP_WSGI_CRASH_FATAL) {
            return ngx_slprintf(buf, last, " in os._exit(%ui), exit code %d",
                                value, NGX_HTTP_WSGI_CRASH_NOT_FATAL);
        }

        return ngx_slprintf(buf, last, " in os._exit(%ui)", value);
    }

    return buf;
}


/* NGX_OK, or 503 while the application's import is contained */

ngx_int_t
ngx_http_wsgi_crash_check(ngx_http_request_t *r, ngx_http_wsgi_app_t *app)
{
    u_char                     *p;
    uint64_t                    now, left;
    ngx_pid_t                   pid, probe;
    ngx_uint_t                  crashes, how, result, probing;
    ngx_msec_t                  delay;
    ngx_table_elt_t            *h;
    ngx_http_wsgi_crash_app_t  *a;
    u_char                      buf[64];

    if (ngx_http_wsgi_crash_shm == NULL) {
        return NGX_OK;
    }

    /* nobody else reaps it: the worker's SIGCHLD is left at its default */

    if (ngx_http_wsgi_crash_forked
        && waitpid(ngx_http_wsgi_crash_forked, NULL, WNOHANG) != 0)
    {
        ngx_http_wsgi_crash_forked = 0;
    }

    a = &ngx_http_wsgi_crash_shm->apps[app->index];

    if (a->crashes == 0 || ngx_http_wsgi_crash_loaded[app->index]) {
        return NGX_OK;
    }

    now = ngx_http_wsgi_crash_clock();
    result = 0;
    probe = 0;

    ngx_shmtx_lock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    if (a->crashes && a->probe) {

        if (a->outcome.done) {
            a->probe = 0;

            if (a->outcome.returned) {
                /* the delay stays until a worker's import returns too */
                a->crashes = 0;

            } else {
                a->crashes++;
                a->pid = a->outcome.pid;
                a->how = a->outcome.noted ? a->outcome.noted : a->outcome.how;
                a->delay = ngx_min(2 * a->delay,
                                   NGX_HTTP_WSGI_CRASH_MAX_DELAY);
                a->next = now + a->delay;
            }

            result = 1;

        } else if (now - a->probe_start > 2 * NGX_HTTP_WSGI_CRASH_PROBE
                   || (kill(a->prober, 0) == -1 && ngx_errno == NGX_ESRCH))
        {
            /* lost with the worker that forked it, which nginx reaps */
            a->probe = 0;
        }
    }

    if (a->crashes && a->probe == 0 && now >= a->next) {
        /* this worker tries; the others wait for the probe */
        a->probe = -1;
        a->prober = ngx_pid;
        a->probe_start = now;
        a->outcome.pid = 0;
        a->outcome.how = 0;
        a->outcome.noted = 0;
        a->outcome.returned = 0;
        a->outcome.done = 0;
        probe = 1;
    }

    crashes = a->crashes;
    pid = a->pid;
    how = a->how;
    delay = a->delay;
    left = (now < a->next) ? a->next - now : 0;
    probing = (a->probe != 0);

    ngx_shmtx_unlock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    p = ngx_http_wsgi_crash_how(buf, buf + sizeof(buf) - 1, how);
    *p = '\0';

    if (result) {
        if (crashes == 0) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "wsgi: the import of script \"%s\" returned in "
                          "a probe process, the workers import it again",
                          app->path.data);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: probe process %P died%s while importing "
                      "script \"%s\" again; its requests get 503 until an "
                      "import returns, the next one in %Mms",
                      pid, buf, app->path.data, delay);
    }

    if (probe && ngx_http_wsgi_ninterps > 1) {

        /*
         * The child of a process with sub-interpreters hangs in
         * PyOS_AfterFork_Child(): this worker imports it itself, and the
         * others wait for one delay more.
         */

        ngx_shmtx_lock(&ngx_http_wsgi_crash_shm->shpool->mutex);

        a->probe = 0;
        a->next = now + a->delay;

        ngx_shmtx_unlock(&ngx_http_wsgi_crash_shm->shpool->mutex);

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "wsgi: importing script \"%s\" again in this worker, "
                      "as no probe process can run Python beside "
                      "sub-interpreters", app->path.data);

        return NGX_OK;
    }

    if (probe) {
        probe = ngx_http_wsgi_probe_fork(app, &a->outcome,
                                         r->connection->log);

        ngx_shmtx_lock(&ngx_http_wsgi_crash_shm->shpool->mutex);

        if (probe == NGX_INVALID_PID) {
            a->probe = 0;
            a->next = now + a->delay;

        } else {
            a->probe = probe;
            ngx_http_wsgi_crash_forked = probe;
        }

        ngx_shmtx_unlock(&ngx_http_wsgi_crash_shm->shpool->mutex);

        if (probe != NGX_INVALID_PID) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "wsgi: importing script \"%s\" again in probe "
                          "process %P", app->path.data, probe);
        }
    }

    if (probing) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: script \"%s\" is not loaded: process %P "
                      "died%s while importing it (crashes: %ui), a probe "
                      "process imports it again",
                      app->path.data, pid, buf, crashes);
        left = 1000;

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "wsgi: script \"%s\" is not loaded: process %P "
                      "died%s while importing it (crashes: %ui), the next "
                      "import in %uLms",
                      app->path.data, pid, buf, crashes, left);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h != NULL) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            h->hash = 0;

        } else {
            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            h->value.data = p;
            h->value.len = ngx_sprintf(p, "%uL", (left + 999) / 1000) - p;
            h->lowcase_key = NULL;
        }
    }

    return NGX_HTTP_SERVICE_UNAVAILABLE;
}


/* in a probe's processes: the worker's records are not theirs */

void
ngx_http_wsgi_crash_forget(volatile ngx_uint_t *noted)
{
    ngx_http_wsgi_crash_worker = NULL;
    ngx_http_wsgi_crash_shm = NULL;
    ngx_http_wsgi_crash_slot = NULL;
    ngx_http_wsgi_crash_noted = noted;
}


/* around an import of a script, on whatever thread does it */

void
ngx_http_wsgi_crash_import(ngx_http_wsgi_app_t *app)
{
    ngx_http_wsgi_crash_slot_t  *s;

    if (ngx_http_wsgi_crash_worker == NULL) {
        return;
    }

    /* threads may import at once, each in a step of its own */

    s = ngx_http_wsgi_crash_slot;

    if (s && s->pid == ngx_pid) {
        s->app = app->index;
        s->importing = 1;
        return;
    }

    s = &ngx_http_wsgi_crash_worker->import;

    s->app = app->index;
    s->how = 0;
    s->pid = ngx_pid;
}


void
ngx_http_wsgi_crash_imported(ngx_http_wsgi_app_t *app, ngx_uint_t loaded,
    ngx_log_t *log)
{
    ngx_uint_t                  crashes;
    ngx_http_wsgi_crash_app_t  *a;

    if (ngx_http_wsgi_crash_shm == NULL) {
        return;
    }

    if (ngx_http_wsgi_crash_slot && ngx_http_wsgi_crash_slot->importing) {
        ngx_http_wsgi_crash_slot->importing = 0;

    } else if (ngx_http_wsgi_crash_worker) {
        ngx_http_wsgi_crash_worker->import.pid = 0;
    }

    ngx_http_wsgi_crash_loaded[app->index] = (u_char) loaded;

    a = &ngx_http_wsgi_crash_shm->apps[app->index];

    if (a->crashes == 0 && a->delay == 0) {
        return;
    }

    ngx_shmtx_lock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    crashes = a->crashes;
    a->crashes = 0;
    a->delay = 0;
    a->next = 0;

    ngx_shmtx_unlock(&ngx_http_wsgi_crash_shm->shpool->mutex);

    if (crashes) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "wsgi: script \"%s\" imported after %ui crashes",
                      app->path.data, crashes);
    }
}


/* around a step: the request it serves, for the next worker if it dies */

void
ngx_http_wsgi_crash_step(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_uint_t                   i;
    ngx_http_wsgi_crash_slot_t  *s;

    s = ngx_http_wsgi_crash_slot;

    if (s == NULL) {
        if (ngx_http_wsgi_crash_worker == NULL || ngx_http_wsgi_crash_noslot) {
            return;
        }

        /* shared, a record would be cleared by the other thread's step */

        i = ngx_atomic_fetch_add(&ngx_http_wsgi_crash_worker->nsteps, 1);

        if (i >= NGX_HTTP_WSGI_CRASH_STEPS) {
            ngx_http_wsgi_crash_noslot = 1;
            return;
        }

        s = &ngx_http_wsgi_crash_worker->steps[i];
        ngx_http_wsgi_crash_slot = s;

        ngx_http_wsgi_crash_altstack(ctx->log);
    }

    /* described only when the worker dies; the barrier keeps pid last */

    s->app = ctx->app->index;
    s->importing = 0;
    s->ctx = ctx;
    s->method[0] = '\0';
    s->uri[0] = '\0';
    s->how = 0;

    ngx_memory_barrier();

    s->pid = ngx_pid;
}


void
ngx_http_wsgi_crash_step_done(void)
{
    if (ngx_http_wsgi_crash_slot) {
        ngx_http_wsgi_crash_slot->pid = 0;
    }
}


/* the signal is noted, then raised again under the previous action */

static void
ngx_http_wsgi_crash_signals(ngx_log_t *log)
{
    ngx_uint_t        i;
    struct sigaction  sa;

    ngx_memzero(&sa, sizeof(struct sigaction));
    sa.sa_handler = ngx_http_wsgi_crash_signal;
    sa.sa_flags = SA_NODEFER|SA_ONSTACK;
    sigemptyset(&sa.sa_mask);

    for (i = 0; i < sizeof(ngx_http_wsgi_crash_signos) / sizeof(int); i++) {
        if (sigaction(ngx_http_wsgi_crash_signos[i], &sa,
                      &ngx_http_wsgi_crash_saved[i])
            == -1)
        {
            ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                          "wsgi: sigaction(%d) failed",
                          ngx_http_wsgi_crash_signos[i]);
        }
    }

    ngx_http_wsgi_crash_altstack(log);
}


/* a thread that overflowed its stack needs another one for the handler */

static void
ngx_http_wsgi_crash_altstack(ngx_log_t *log)
{
    u_char   *p;
    stack_t   ss;

    if (sigaltstack(NULL, &ss) == -1 || !(ss.ss_flags & SS_DISABLE)) {
        return;
    }

    p = mmap(NULL, ngx_pagesize + NGX_HTTP_WSGI_CRASH_ALTSTACK,
             PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "wsgi: mmap(%uz) for a signal stack failed",
                      ngx_pagesize + NGX_HTTP_WSGI_CRASH_ALTSTACK);
        return;
    }

    if (mprotect(p, ngx_pagesize, PROT_NONE) == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "wsgi: mprotect() of a signal stack failed");
    }

    ss.ss_sp = p + ngx_pagesize;
    ss.ss_size = NGX_HTTP_WSGI_CRASH_ALTSTACK;
    ss.ss_flags = 0;

    if (sigaltstack(&ss, NULL) == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "wsgi: sigaltstack() failed");
        (void) munmap(p, ngx_pagesize + NGX_HTTP_WSGI_CRASH_ALTSTACK);
    }
}


static void
ngx_http_wsgi_crash_signal(int signo)
{
    ngx_uint_t  i;

    if (!ngx_http_wsgi_crash_noting) {
        ngx_http_wsgi_crash_noting = 1;
        ngx_http_wsgi_crash_note(NGX_HTTP_WSGI_CRASH_SIGNAL | signo);
    }

    for (i = 0; i < sizeof(ngx_http_wsgi_crash_signos) / sizeof(int); i++) {
        if (ngx_http_wsgi_crash_signos[i] == signo) {
            (void) sigaction(signo, &ngx_http_wsgi_crash_saved[i], NULL);
            break;
        }
    }

    (void) raise(signo);
}


/* async-signal-safe: the whole process dies, whichever thread got it */

static void
ngx_http_wsgi_crash_note(ngx_uint_t how)
{
    ngx_uint_t                     i;
    ngx_http_wsgi_crash_worker_t  *w;

    /* a process the application forked is not the worker */

    if (getpid() != ngx_pid) {
        return;
    }

    if (ngx_http_wsgi_crash_noted) {
        *ngx_http_wsgi_crash_noted = how;
        return;
    }

    w = ngx_http_wsgi_crash_worker;

    if (w == NULL) {
        return;
    }

    if (w->import.pid == ngx_pid) {
        w->import.how = how;
    }

    for (i = 0; i < NGX_HTTP_WSGI_CRASH_STEPS; i++) {
        if (w->steps[i].pid == ngx_pid) {
            ngx_http_wsgi_crash_describe(&w->steps[i]);
            w->steps[i].how = how;
        }
    }
}


/* the method and URI of the request a slot's step runs, as the step has */

static void
ngx_http_wsgi_crash_describe(ngx_http_wsgi_crash_slot_t *s)
{
    size_t                len;
    ngx_uint_t            i, n;
    ngx_http_wsgi_env_t  *env;

    if (s->ctx == NULL) {
        return;
    }

    env = s->ctx->snap.env.elts;
    n = ngx_min(s->ctx->snap.env.nelts, 8);

    for (i = 0; i < n; i++) {
        if (env[i].known == NGX_HTTP_WSGI_ENV_REQUEST_METHOD) {
            len = ngx_min(env[i].value.len, sizeof(s->method) - 1);
            ngx_memcpy(s->method, env[i].value.data, len);
            s->method[len] = '\0';

        } else if (env[i].known == NGX_HTTP_WSGI_ENV_REQUEST_URI) {
            len = ngx_min(env[i].value.len, sizeof(s->uri) - 1);
            ngx_memcpy(s->uri, env[i].value.data, len);
            s->uri[len] = '\0';
        }
    }
}


/* os._exit() noting the status, and never 2: the master would not respawn */

ngx_int_t
ngx_http_wsgi_crash_python(void)
{
    ngx_int_t    rc;
    PyObject    *fn, *mod;
    ngx_uint_t   i;
    static char *names[] = { "posix", "os" };

    fn = PyCFunction_New(&ngx_http_wsgi_crash_exit_def, NULL);
    if (fn == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_OK;

    for (i = 0; i < 2; i++) {
        mod = PyImport_ImportModule(names[i]);
        if (mod == NULL) {
            rc = NGX_ERROR;
            break;
        }

        if (PyObject_SetAttrString(mod, "_exit", fn) != 0) {
            rc = NGX_ERROR;
        }

        Py_DECREF(mod);

        if (rc != NGX_OK) {
            break;
        }
    }

    Py_DECREF(fn);

    return rc;
}


static PyObject *
ngx_http_wsgi_crash_exit(PyObject *self, PyObject *arg)
{
    int   status;
    long  value;

    value = PyLong_AsLong(arg);

    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }

    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "_exit() status is out of the range of an int");
        return NULL;
    }

    status = (int) value;

    /* the exit status of a process the application forked is its own */

    if (getpid() != ngx_pid) {
        _exit(status);
    }

    ngx_http_wsgi_crash_note(NGX_HTTP_WSGI_CRASH_EXIT
                             | (status & NGX_HTTP_WSGI_CRASH_VALUE));

    if ((status & 0xff) == NGX_HTTP_WSGI_CRASH_FATAL) {
        status = NGX_HTTP_WSGI_CRASH_NOT_FATAL;
    }

    _exit(status);
}


static uint64_t
ngx_http_wsgi_crash_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
