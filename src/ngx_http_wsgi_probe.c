
/*
 * nginx mod_wsgi: the probe of an application whose import crashed: the
 * import is tried again in a process of its own, which a crash kills
 * instead of a worker.
 */


#include "ngx_http_wsgi_module.h"

#if (NGX_LINUX)
#include <sys/prctl.h>
#endif


#define NGX_HTTP_WSGI_PROBE_POLL  10          /* ms */


static void ngx_http_wsgi_probe_process(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_probe_t *p, ngx_pid_t parent);


/*
 * Forked from the worker on the event loop, holding the GIL as os.fork()
 * does; it forks the process that imports, and writes how that one ended.
 */

ngx_pid_t
ngx_http_wsgi_probe_fork(ngx_http_wsgi_app_t *app, ngx_http_wsgi_probe_t *p,
    ngx_log_t *log)
{
    ngx_pid_t       pid, parent;
    ngx_err_t       err;

    parent = ngx_pid;

    /* only the main interpreter goes on in a child */

    ngx_http_wsgi_python_enter(ngx_http_wsgi_interp);

    PyOS_BeforeFork();

    pid = fork();

    if (pid == 0) {
        PyOS_AfterFork_Child();
        ngx_http_wsgi_probe_process(app, p, parent);
    }

    err = ngx_errno;

    PyOS_AfterFork_Parent();

    ngx_http_wsgi_python_leave();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_ERR, log, err,
                      "wsgi: fork() of a probe for \"%s\" failed",
                      app->path.data);
        return NGX_INVALID_PID;
    }

    return pid;
}


static void
ngx_http_wsgi_probe_process(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_probe_t *p, ngx_pid_t parent)
{
    int                status;
    ngx_pid_t          pid, rc;
    ngx_uint_t         i, n;
    ngx_listening_t   *ls;
    ngx_connection_t  *c;

    ngx_pid = ngx_getpid();

    /* the worker's records are not this process's */

    ngx_http_wsgi_crash_forget(NULL);

#if (NGX_LINUX)
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif

    if (getppid() != parent) {
        _exit(0);
    }

    (void) signal(SIGCHLD, SIG_DFL);

    /* the worker's sockets must not stay open in here */

    ls = ngx_cycle->listening.elts;
    for (i = 0; i < ngx_cycle->listening.nelts; i++) {
        if (ls[i].fd != (ngx_socket_t) -1) {
            (void) close(ls[i].fd);
        }
    }

    c = ngx_cycle->connections;
    for (i = 0; i < ngx_cycle->connection_n; i++) {
        if (c[i].fd != (ngx_socket_t) -1) {
            (void) close(c[i].fd);
        }
    }

    parent = ngx_pid;

    PyOS_BeforeFork();

    pid = fork();

    if (pid == 0) {
        PyOS_AfterFork_Child();

        ngx_pid = ngx_getpid();
        ngx_http_wsgi_crash_forget(&p->noted);

#if (NGX_LINUX)
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif

        if (getppid() != parent) {
            _exit(0);
        }

        p->pid = ngx_pid;

        /* logged there if it raises */
        Py_XDECREF(ngx_http_wsgi_app_get(app, app->interp, ngx_cycle->log));

        p->returned = 1;
        _exit(0);
    }

    if (pid == -1) {
        p->done = 1;
        _exit(0);
    }

    status = 0;

    for (n = 0; /* void */; n++) {
        rc = waitpid(pid, &status, WNOHANG);

        if (rc == pid) {
            break;
        }

        if (rc == -1 && ngx_errno != NGX_EINTR) {
            break;
        }

        if (n == NGX_HTTP_WSGI_CRASH_PROBE / NGX_HTTP_WSGI_PROBE_POLL) {
            (void) kill(pid, SIGKILL);
        }

        ngx_msleep(NGX_HTTP_WSGI_PROBE_POLL);
    }

    if (WIFSIGNALED(status)) {
        p->how = NGX_HTTP_WSGI_CRASH_SIGNAL | WTERMSIG(status);

    } else if (!p->returned) {
        p->how = NGX_HTTP_WSGI_CRASH_EXIT
                 | (WEXITSTATUS(status) & NGX_HTTP_WSGI_CRASH_VALUE);
    }

    ngx_memory_barrier();

    p->done = 1;

    _exit(0);
}
