
/*
 * nginx mod_wsgi: the interpreters of a worker process, their thread
 * states and the GIL.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_GONE  16       /* thread states deleted at a time */


typedef struct ngx_http_wsgi_tstates_s  ngx_http_wsgi_tstates_t;

/* a thread's thread states, one per interpreter, made as it needs them */
struct ngx_http_wsgi_tstates_s {
    ngx_http_wsgi_tstates_t     *next;
    PyThreadState               *ts[1];
};


static ngx_http_wsgi_tstates_t *ngx_http_wsgi_tstates_get(void);
static PyThreadState *ngx_http_wsgi_tstate(ngx_http_wsgi_interp_t *interp);
static void ngx_http_wsgi_interp_started(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
static ngx_int_t ngx_http_wsgi_interp_create(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
static ngx_int_t ngx_http_wsgi_interp_config(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf, PyConfig *config);
static ngx_int_t ngx_http_wsgi_interp_setup(ngx_http_wsgi_interp_t *interp,
    ngx_http_wsgi_main_conf_t *wmcf);
static ngx_int_t ngx_http_wsgi_interp_path(ngx_array_t *path);
static ngx_int_t ngx_http_wsgi_interp_stdio(void);
static void ngx_http_wsgi_interp_clear(ngx_http_wsgi_interp_t *interp);
static ngx_int_t ngx_http_wsgi_interp_joined(void);
static void ngx_http_wsgi_watchdog_stop(void);
static void *ngx_http_wsgi_watchdog(void *data);


ngx_http_wsgi_interp_t  *ngx_http_wsgi_interp;
ngx_uint_t               ngx_http_wsgi_ninterps;
ngx_uint_t               ngx_http_wsgi_multiprocess;

/* the calling thread's interpreter when last looked up */
ngx_http_wsgi_tls ngx_http_wsgi_interp_t  *ngx_http_wsgi_interp_last;

/* every thread's, for the end of the interpreters */
static ngx_http_wsgi_tstates_t  *ngx_http_wsgi_tstates_all;
static pthread_mutex_t  ngx_http_wsgi_tstates_mutex =
    PTHREAD_MUTEX_INITIALIZER;

static ngx_http_wsgi_tls ngx_http_wsgi_tstates_t  *ngx_http_wsgi_tstates;

/* the calling thread's current one, while it holds the GIL */
static ngx_http_wsgi_tls PyThreadState  *ngx_http_wsgi_ts;

/* how many enters of the calling thread hold the GIL: they nest */
static ngx_http_wsgi_tls ngx_uint_t      ngx_http_wsgi_depth;

static sem_t       ngx_http_wsgi_watchdog_sem;
static pthread_t   ngx_http_wsgi_watchdog_tid;
static ngx_msec_t  ngx_http_wsgi_watchdog_timeout;
static ngx_log_t  *ngx_http_wsgi_watchdog_log;


static ngx_http_wsgi_tstates_t *
ngx_http_wsgi_tstates_get(void)
{
    ngx_http_wsgi_tstates_t  *set;

    set = ngx_http_wsgi_tstates;

    if (set) {
        return set;
    }

    set = ngx_calloc(sizeof(ngx_http_wsgi_tstates_t)
                     + (ngx_http_wsgi_ninterps - 1) * sizeof(PyThreadState *),
                     ngx_cycle->log);
    if (set == NULL) {
        Py_FatalError("nginx mod_wsgi: no memory for thread states");
    }

    (void) pthread_mutex_lock(&ngx_http_wsgi_tstates_mutex);
    set->next = ngx_http_wsgi_tstates_all;
    ngx_http_wsgi_tstates_all = set;
    (void) pthread_mutex_unlock(&ngx_http_wsgi_tstates_mutex);

    ngx_http_wsgi_tstates = set;

    return set;
}


static PyThreadState *
ngx_http_wsgi_tstate(ngx_http_wsgi_interp_t *interp)
{
    PyThreadState            *ts;
    ngx_http_wsgi_tstates_t  *set;

    set = ngx_http_wsgi_tstates_get();

    ts = set->ts[interp->index];

    if (ts == NULL && interp->index && set->ts[0] == NULL) {
        /* 3.11's PyGILState binds a thread to its first thread state */
        (void) ngx_http_wsgi_tstate(ngx_http_wsgi_interp);
    }

    if (ts == NULL) {
        ts = PyThreadState_New(interp->is);
        if (ts == NULL) {
            Py_FatalError("nginx mod_wsgi: no memory for a thread state");
        }

        set->ts[interp->index] = ts;
    }

    return ts;
}


void
ngx_http_wsgi_python_enter(ngx_http_wsgi_interp_t *interp)
{
    PyThreadState  *ts;

    if (ngx_http_wsgi_depth++) {
        ngx_http_wsgi_python_switch(interp);
        return;
    }

    ts = ngx_http_wsgi_tstate(interp);

    PyEval_RestoreThread(ts);
    ngx_http_wsgi_ts = ts;
}


void
ngx_http_wsgi_python_leave(void)
{
    if (ngx_http_wsgi_depth == 1 && ngx_http_wsgi_reaping) {
        ngx_http_wsgi_interp_reap();
    }

    if (--ngx_http_wsgi_depth == 0) {

        /*
         * 3.12 binds PyGILState to the thread state a thread ran last,
         * and another thread may end that one's interpreter
         */

        if (NGX_HTTP_WSGI_GILSTATE_LAST && ngx_http_wsgi_interp) {
            ngx_http_wsgi_python_switch(ngx_http_wsgi_interp);
        }

        (void) PyEval_SaveThread();
        ngx_http_wsgi_ts = NULL;
    }
}


/* the GIL is held: whoever runs Python next switches to its own */

void
ngx_http_wsgi_python_switch(ngx_http_wsgi_interp_t *interp)
{
    PyThreadState  *ts;

    ts = ngx_http_wsgi_tstate(interp);

    if (ts != ngx_http_wsgi_ts) {
        (void) PyThreadState_Swap(ts);
        ngx_http_wsgi_ts = ts;
    }
}


ngx_int_t
ngx_http_wsgi_interp_init(ngx_cycle_t *cycle, ngx_http_wsgi_main_conf_t *wmcf)
{
    PyConfig                 config;
    PyStatus                 status;
    ngx_uint_t               i;
    ngx_http_wsgi_app_t    **apps;
    ngx_http_wsgi_interp_t  *interp;

    if (PyImport_AppendInittab("ngx", ngx_http_wsgi_module_init) != 0) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "wsgi: cannot register the \"ngx\" module");
        return NGX_ERROR;
    }

    PyConfig_InitPythonConfig(&config);

    if (ngx_http_wsgi_interp_config(cycle, wmcf, &config) != NGX_OK) {
        PyConfig_Clear(&config);
        return NGX_ERROR;
    }

    status = Py_InitializeFromConfig(&config);

    PyConfig_Clear(&config);

    if (PyStatus_Exception(status)) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "wsgi: Python initialisation failed: %s%s%s",
                      status.func ? status.func : "",
                      status.func ? "(): " : "",
                      status.err_msg ? status.err_msg : "exit");
        return NGX_ERROR;
    }

    ngx_http_wsgi_multiprocess = (wmcf->workers > 1);

    /* the event loop thread holds the GIL until the imports are done */

    ngx_http_wsgi_depth = 1;
    ngx_http_wsgi_ts = PyThreadState_Get();

    if (ngx_http_wsgi_interp_create(cycle, wmcf) != NGX_OK) {
        /* Python stays, unused: a half-made interpreter may not end */
        ngx_http_wsgi_interp = NULL;
        ngx_http_wsgi_python_leave();
        return NGX_ERROR;
    }

    /* import at start, so that the first request is not slow */

    apps = wmcf->apps.elts;
    interp = ngx_http_wsgi_interp;

    for (i = 0; i < wmcf->apps.nelts; i++) {
        apps[i]->interp = &interp[apps[i]->group];
    }

    for (i = 0; i < wmcf->apps.nelts; i++) {
        if (ngx_http_wsgi_crash_contained(apps[i])) {
            continue;
        }

        ngx_http_wsgi_python_switch(apps[i]->interp);

        Py_XDECREF(ngx_http_wsgi_app_get(apps[i], apps[i]->interp,
                                         cycle->log));
        ngx_http_wsgi_forked_check(cycle->log);
    }

    ngx_http_wsgi_interp_started(cycle, wmcf);

    /* the worker runs Python only inside steps */

    ngx_http_wsgi_python_leave();

    return NGX_OK;
}


/*
 * Which Python started, and from where: an executable or home of another
 * version goes unnoticed by Python, which falls back to its built-in
 * prefix.
 */

static void
ngx_http_wsgi_interp_started(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    PyObject    *exe, *prefix;
    const char  *e, *p;

    /* borrowed */
    exe = PySys_GetObject("executable");
    prefix = PySys_GetObject("prefix");

    e = (exe && PyUnicode_Check(exe)) ? PyUnicode_AsUTF8(exe) : NULL;
    p = (prefix && PyUnicode_Check(prefix)) ? PyUnicode_AsUTF8(prefix) : NULL;

    PyErr_Clear();

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0, "wsgi: Python %s started, "
                  "executable \"%s\", prefix \"%s\", interpreters: %ui",
                  Py_GetVersion(), e ? e : "", p ? p : "",
                  wmcf->groups.nelts);
}


/*
 * The main interpreter, then one per application group, set up; after
 * them, slots for the interpreters that replace those of the groups that
 * reload with "interpreter".
 */

static ngx_int_t
ngx_http_wsgi_interp_create(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    PyStatus                 status;
    ngx_uint_t               i, j, k, n, total;
    PyThreadState           *ts;
    ngx_http_wsgi_group_t   *groups;
    ngx_http_wsgi_interp_t  *interps, *interp;

    n = wmcf->groups.nelts;
    groups = wmcf->groups.elts;

    total = n;

    for (i = 1; i < n; i++) {
        if (groups[i].renew) {
            total += NGX_HTTP_WSGI_GENERATIONS - 1;
        }
    }

    interps = ngx_pcalloc(cycle->pool,
                          total * sizeof(ngx_http_wsgi_interp_t));
    if (interps == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < total; i++) {
        interps[i].index = i;
        interps[i].next = (i + 1 < total) ? &interps[i + 1] : NULL;

        if (i < n) {
            interps[i].group = &groups[i];
            interps[i].live = &interps[i];
        }
    }

    /* a group's spare slots are its own: its name and path go with them */

    k = n;

    for (i = 1; i < n; i++) {
        for (j = 1; groups[i].renew && j < NGX_HTTP_WSGI_GENERATIONS; j++) {
            interps[k].group = &groups[i];
            interps[k].spare = 1;
            k++;
        }
    }

    ngx_http_wsgi_interp = interps;
    ngx_http_wsgi_ninterps = total;

    /* the event loop thread's thread states are the interpreters' first */

    ts = ngx_http_wsgi_ts;
    interps[0].is = PyThreadState_GetInterpreter(ts);

    ngx_http_wsgi_tstates_get()->ts[0] = ts;

    for (i = 0; i < n; i++) {
        interp = &interps[i];

        if (i > 0) {
            status = ngx_http_wsgi_new_interpreter(&ts);

            if (PyStatus_Exception(status)) {
                ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                              "wsgi: cannot create the interpreter of "
                              "application group \"%V\": %s",
                              &interp->group->name,
                              status.err_msg ? status.err_msg : "");
                ngx_http_wsgi_python_switch(&interps[0]);
                return NGX_ERROR;
            }

            interp->is = PyThreadState_GetInterpreter(ts);
            ngx_http_wsgi_tstates->ts[i] = ts;
            ngx_http_wsgi_ts = ts;
        }

        if (ngx_http_wsgi_interp_setup(interp, wmcf) != NGX_OK) {
            ngx_http_wsgi_log_exception(cycle->log, "Python setup of the "
                                        "interpreter of application group "
                                        "\"%V\" failed",
                                        &interp->group->name);
            ngx_http_wsgi_python_switch(&interps[0]);
            return NGX_ERROR;
        }
    }

    ngx_http_wsgi_python_switch(&interps[0]);

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_interp_config(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf, PyConfig *config)
{
    char             *exe;
    PyStatus          status;
    ngx_file_info_t   fi;
    u_char            path[NGX_MAX_PATH];

    config->install_signal_handlers = 0;
    config->parse_argv = 0;
    config->configure_c_stdio = 0;
    config->optimization_level = (int) wmcf->optimize;

    if (wmcf->python_executable.len) {
        exe = (char *) wmcf->python_executable.data;

        /*
         * sys.executable, and where the prefix and a pyvenv.cfg are looked
         * for; program_name is argv[0], as from a shell
         */

        status = PyConfig_SetBytesString(config, &config->executable, exe);

        if (!PyStatus_Exception(status)) {
            status = PyConfig_SetBytesString(config, &config->program_name,
                                             exe);
        }

    } else if (wmcf->python_home.len) {
        if (wmcf->python_home.len + sizeof("/bin/python3") > NGX_MAX_PATH) {
            ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                          "wsgi: wsgi_python_home \"%V\" is too long",
                          &wmcf->python_home);
            return NGX_ERROR;
        }

        /* a virtualenv is found through its interpreter, as python does */

        (void) ngx_sprintf(path, "%V/pyvenv.cfg%Z", &wmcf->python_home);

        if (ngx_file_info(path, &fi) != NGX_FILE_ERROR) {
            (void) ngx_sprintf(path, "%V/bin/python3%Z", &wmcf->python_home);
            status = PyConfig_SetBytesString(config, &config->program_name,
                                             (char *) path);

        } else {
            (void) ngx_sprintf(path, "%V%Z", &wmcf->python_home);
            status = PyConfig_SetBytesString(config, &config->home,
                                             (char *) path);
        }

    } else {

        /* not the first python3 on PATH: the one we are linked with */

        status = PyConfig_SetBytesString(config, &config->program_name,
                                         NGX_HTTP_WSGI_PYTHON);
    }

    if (PyStatus_Exception(status)) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "wsgi: Python configuration failed: %s",
                      status.err_msg ? status.err_msg : "");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_interp_setup(ngx_http_wsgi_interp_t *interp,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    PyObject    *threading;
    ngx_uint_t   i;

    interp->name = PyUnicode_DecodeFSDefaultAndSize(
                                        (char *) interp->group->name.data,
                                        interp->group->name.len);
    if (interp->name == NULL) {
        return NGX_ERROR;
    }

    interp->module = PyImport_ImportModule("ngx");
    if (interp->module == NULL) {
        return NGX_ERROR;
    }

    /*
     * threading takes the thread that imports it first for the main one,
     * and the interpreter's end waits for that one: the thread that makes
     * the interpreter, whose thread state goes before the end
     */

    threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return NGX_ERROR;
    }

    Py_DECREF(threading);

    interp->state = PyModule_GetState(interp->module);

    if (ngx_http_wsgi_interp_path(interp->group->python_path) != NGX_OK
        || ngx_http_wsgi_interp_stdio() != NGX_OK
        || ngx_http_wsgi_crash_python() != NGX_OK)
    {
        return NGX_ERROR;
    }

    interp->apps = PyList_New(wmcf->apps.nelts);
    if (interp->apps == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < wmcf->apps.nelts; i++) {
        PyList_SET_ITEM(interp->apps, i, Py_NewRef(Py_None));
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_interp_path(ngx_array_t *path)
{
    ngx_int_t   i;
    PyObject   *sys_path, *dir;
    ngx_str_t  *dirs;

    if (path == NULL) {
        return NGX_OK;
    }

    /* borrowed */
    sys_path = PySys_GetObject("path");
    if (sys_path == NULL || !PyList_Check(sys_path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return NGX_ERROR;
    }

    dirs = path->elts;

    for (i = path->nelts - 1; i >= 0; i--) {
        dir = PyUnicode_DecodeFSDefaultAndSize((char *) dirs[i].data,
                                               dirs[i].len);
        if (dir == NULL) {
            return NGX_ERROR;
        }

        if (PyList_Insert(sys_path, 0, dir) != 0) {
            Py_DECREF(dir);
            return NGX_ERROR;
        }

        Py_DECREF(dir);
    }

    return NGX_OK;
}


/*
 * sys.stdout and sys.stderr: text streams as Python's own, into the error
 * log.  print() shows at nginx's default "error" level, as in Apache.
 * Write-through: every write reaches the log stream at once, so that a
 * partial line is ours to log at the end of its request.  Not line
 * buffered: that flushes after any write with a newline or a CR in it,
 * and a flush logs the partial line, so print("a\nb") would log "a", "b"
 * and an empty line.
 */

static ngx_int_t
ngx_http_wsgi_interp_stdio(void)
{
    PyObject               *io, *raw, *text;
    ngx_uint_t              i;
    ngx_http_wsgi_state_t  *st;

    static const char  *names[] = { "stdout", "stderr" };

    st = ngx_http_wsgi_state();

    io = PyImport_ImportModule("io");
    if (io == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 2; i++) {
        raw = ngx_http_wsgi_log_stream_new(i ? "<stderr>" : "<stdout>",
                                           NGX_LOG_ERR);
        if (raw == NULL) {
            goto failed;
        }

        text = PyObject_CallMethod(io, "TextIOWrapper", "Osszii", raw,
                                   "utf-8", "backslashreplace", NULL, 0, 1);
        if (text == NULL) {
            Py_DECREF(raw);
            goto failed;
        }

        Py_XSETREF(st->stdio[i], raw);

        if (PySys_SetObject(names[i], text) != 0) {
            Py_DECREF(text);
            goto failed;
        }

        Py_DECREF(text);
    }

    Py_DECREF(io);

    return NGX_OK;

failed:

    Py_DECREF(io);

    return NGX_ERROR;
}


/*
 * The groups' interpreters end first, then Python.  A thread the
 * application left running may hold either up: the watchdog ends the
 * worker at worker_shutdown_timeout.
 */

void
ngx_http_wsgi_interp_done(ngx_cycle_t *cycle)
{
    ngx_int_t                i, ended;
    ngx_http_wsgi_interp_t  *interps, *interp;

    interps = ngx_http_wsgi_interp;

    if (interps == NULL) {
        return;
    }

    ngx_http_wsgi_python_enter(&interps[0]);

    ended = 1;

    for (i = ngx_http_wsgi_ninterps - 1; i > 0; i--) {
        interp = &interps[i];

        if (interp->is == NULL) {
            continue;
        }

        if (interp->ending) {
            /* another thread ends it, and may still */
            ended = 0;
            continue;
        }

        ngx_http_wsgi_python_switch(interp);

        /* partial lines that threads left, before the log goes */

        ngx_http_wsgi_log_stream_done(NULL);

        if (ngx_http_wsgi_interp_end(interp, 1, cycle->log) != NGX_OK) {
            ended = 0;
        }

        ngx_http_wsgi_python_switch(&interps[0]);
    }

    interp = &interps[0];

    ngx_http_wsgi_log_stream_done(NULL);

    ngx_http_wsgi_interp_clear(interp);

    if (!ended) {
        /*
         * Python cannot end around an interpreter that did not; the GIL
         * stays, so that its threads run no more while nginx ends
         */

    } else if (Py_FinalizeEx() != 0) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "wsgi: Python finalisation reported an error");
    }

    ngx_http_wsgi_watchdog_stop();

    ngx_http_wsgi_interp = NULL;
    ngx_http_wsgi_ts = NULL;
    ngx_http_wsgi_depth = 0;
}


/*
 * An interpreter for a slot, made by the calling thread while it is in
 * another one, and set up: the thread is in it then.  On NGX_ERROR, logged,
 * the thread is in none, or in it if it could not end (interp->is).
 */

ngx_int_t
ngx_http_wsgi_interp_new(ngx_http_wsgi_interp_t *interp, ngx_log_t *log)
{
    PyStatus        status;
    PyThreadState  *ts;

    status = ngx_http_wsgi_new_interpreter(&ts);

    if (PyStatus_Exception(status)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "wsgi: cannot create an interpreter for application "
                      "group \"%V\": %s", &interp->group->name,
                      status.err_msg ? status.err_msg : "");
        (void) PyThreadState_Swap(NULL);
        ngx_http_wsgi_ts = NULL;
        return NGX_ERROR;
    }

    interp->is = PyThreadState_GetInterpreter(ts);
    ngx_http_wsgi_tstates_get()->ts[interp->index] = ts;
    ngx_http_wsgi_ts = ts;

    if (ngx_http_wsgi_interp_setup(interp,
                                   ngx_http_cycle_get_module_main_conf(
                                       ngx_cycle, ngx_http_wsgi_module))
        != NGX_OK)
    {
        ngx_http_wsgi_log_exception(log, "Python setup of a new interpreter "
                                    "of application group \"%V\" failed",
                                    &interp->group->name);

        /* when threads it started keep it, the thread stays in it */
        (void) ngx_http_wsgi_interp_end(interp, 0, log);

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Py_EndInterpreter() joins the non-daemon threads, and then requires that
 * no other thread state is left: ours go first.  A daemon thread of the
 * application keeps the interpreter, and without join any thread of the
 * application does: NGX_DECLINED.  The calling thread is in it; on NGX_OK,
 * in none.
 */

ngx_int_t
ngx_http_wsgi_interp_end(ngx_http_wsgi_interp_t *interp, ngx_uint_t join,
    ngx_log_t *log)
{
    ngx_int_t                 joined;
    ngx_uint_t                i, n;
    PyThreadState            *ts, *self;
    ngx_http_wsgi_tstates_t  *set;
    PyThreadState            *gone[NGX_HTTP_WSGI_GONE];

    self = ngx_http_wsgi_ts;

    /*
     * cleared out of the lock: a thread's objects may run Python, which
     * lets another thread in, that may want the lock
     */

    do {
        n = 0;

        (void) pthread_mutex_lock(&ngx_http_wsgi_tstates_mutex);

        for (set = ngx_http_wsgi_tstates_all;
             set && n < NGX_HTTP_WSGI_GONE;
             set = set->next)
        {
            ts = set->ts[interp->index];

            if (ts && ts != self) {
                gone[n++] = ts;
                set->ts[interp->index] = NULL;
            }
        }

        (void) pthread_mutex_unlock(&ngx_http_wsgi_tstates_mutex);

        for (i = 0; i < n; i++) {
            PyThreadState_Clear(gone[i]);
            PyThreadState_Delete(gone[i]);
        }

    } while (n == NGX_HTTP_WSGI_GONE);

    /* a thread that just ended may still have its thread state */

    for (i = 0; /* void */; i++) {
        n = 0;

        for (ts = PyInterpreterState_ThreadHead(interp->is);
             ts;
             ts = PyThreadState_Next(ts))
        {
            if (ts != self) {
                n++;
            }
        }

        joined = join ? ngx_http_wsgi_interp_joined() : 0;

        if (joined == NGX_ERROR || (ngx_uint_t) joined >= n || i == 10) {
            break;
        }

        Py_BEGIN_ALLOW_THREADS
        ngx_msleep(1);
        Py_END_ALLOW_THREADS
    }

    if (joined == NGX_ERROR || (ngx_uint_t) joined < n) {
        if (join) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "wsgi: the interpreter of application group "
                          "\"%V\" is not ended, daemon threads of the "
                          "application still run", &interp->group->name);
        }

        return NGX_DECLINED;
    }

    ngx_http_wsgi_interp_clear(interp);

    Py_EndInterpreter(self);

    ngx_http_wsgi_tstates->ts[interp->index] = NULL;
    ngx_http_wsgi_ts = NULL;

    interp->is = NULL;

    return NGX_OK;
}


/* what the worker holds of an interpreter, before it ends */

static void
ngx_http_wsgi_interp_clear(ngx_http_wsgi_interp_t *interp)
{
    Py_CLEAR(interp->apps);
    interp->state = NULL;
    ngx_http_wsgi_module_release(interp->module);
    Py_CLEAR(interp->module);
    Py_CLEAR(interp->name);
}


/* how many threads the end of the interpreter will join */

static ngx_int_t
ngx_http_wsgi_interp_joined(void)
{
    int         daemon;
    PyObject   *name, *threading, *threads, *main, *t, *flag;
    ngx_int_t   n;
    Py_ssize_t  i;

    n = NGX_ERROR;
    threads = NULL;
    main = NULL;

    name = PyUnicode_FromString("threading");
    threading = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);

    if (threading == NULL) {
        goto done;
    }

    threads = PyObject_CallMethod(threading, "enumerate", NULL);
    main = PyObject_CallMethod(threading, "main_thread", NULL);

    if (threads == NULL || main == NULL || !PyList_Check(threads)) {
        goto done;
    }

    n = 0;

    for (i = 0; i < PyList_GET_SIZE(threads); i++) {
        /* borrowed */
        t = PyList_GET_ITEM(threads, i);

        if (t == main) {
            continue;
        }

        flag = PyObject_GetAttrString(t, "daemon");
        daemon = flag ? PyObject_IsTrue(flag) : -1;
        Py_XDECREF(flag);

        if (daemon == -1) {
            n = NGX_ERROR;
            goto done;
        }

        n += !daemon;
    }

done:

    PyErr_Clear();

    Py_XDECREF(main);
    Py_XDECREF(threads);
    Py_XDECREF(threading);

    return n;
}


/* from the start of the worker's exit: anything there may hold the GIL */

void
ngx_http_wsgi_watchdog_start(ngx_cycle_t *cycle)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    ngx_http_wsgi_watchdog_timeout = ccf->shutdown_timeout
                                     ? ccf->shutdown_timeout
                                     : NGX_HTTP_WSGI_SHUTDOWN_TIMEOUT;
    ngx_http_wsgi_watchdog_log = cycle->log;

    if (sem_init(&ngx_http_wsgi_watchdog_sem, 0, 0) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wsgi: sem_init() failed");
        ngx_http_wsgi_watchdog_log = NULL;
        return;
    }

    if (pthread_create(&ngx_http_wsgi_watchdog_tid, NULL,
                       ngx_http_wsgi_watchdog, NULL)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "wsgi: pthread_create() failed");
        ngx_http_wsgi_watchdog_log = NULL;
    }
}


static void
ngx_http_wsgi_watchdog_stop(void)
{
    if (ngx_http_wsgi_watchdog_log == NULL) {
        return;
    }

    (void) sem_post(&ngx_http_wsgi_watchdog_sem);
    (void) pthread_join(ngx_http_wsgi_watchdog_tid, NULL);
    (void) sem_destroy(&ngx_http_wsgi_watchdog_sem);
}


static void *
ngx_http_wsgi_watchdog(void *data)
{
    ngx_msec_t       ms;
    struct timespec  until;

    ms = ngx_http_wsgi_watchdog_timeout;

    (void) clock_gettime(CLOCK_REALTIME, &until);

    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;

    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }

    while (sem_timedwait(&ngx_http_wsgi_watchdog_sem, &until) != 0) {
        if (ngx_errno == NGX_EINTR) {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, ngx_http_wsgi_watchdog_log, 0,
                      "wsgi: Python did not end within %M ms, a thread of "
                      "the application may still run; the worker exits",
                      ms);
        _exit(0);
    }

    return NULL;
}
