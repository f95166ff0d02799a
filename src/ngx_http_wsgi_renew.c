
/*
 * nginx mod_wsgi: the "interpreter" reload mechanism.  A changed script
 * gets its application group a new interpreter, where the group's
 * applications are imported afresh with every module they import.  The
 * requests that come then start in it; the interpreter before ends after
 * its last request in flight.
 *
 * Only the event loop starts requests in an interpreter, and it retires
 * the one before when it takes the new one: a retired interpreter whose
 * count of requests is 0 has none to come.  Its end waits for a thread
 * that holds the GIL outside any step, see ngx_http_wsgi_python_leave().
 */


#include "ngx_http_wsgi_module.h"


static ngx_http_wsgi_interp_t *ngx_http_wsgi_renew_slot(
    ngx_http_wsgi_interp_t *home);
static ngx_int_t ngx_http_wsgi_renew_apps(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_http_wsgi_interp_t *fresh,
    ngx_uint_t *changed, ngx_log_t *log);
static ngx_int_t ngx_http_wsgi_renew_import(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *fresh, ngx_uint_t *changed, ngx_log_t *log);


volatile ngx_uint_t  ngx_http_wsgi_reaping;

/* when the reaper last looked */
static ngx_msec_t  ngx_http_wsgi_reaped;


/* the event loop's: the interpreter a request starts in, counted */

ngx_http_wsgi_interp_t *
ngx_http_wsgi_interp_take(ngx_http_wsgi_ctx_t *ctx)
{
    ngx_http_wsgi_interp_t  *home, *live, *ready;

    home = &ngx_http_wsgi_interp[ctx->app->group];

    if (!home->group->renew) {
        return home;
    }

    live = home->live;
    ready = home->ready;

    if (ready) {
        ngx_memory_barrier();

        home->ready = NULL;
        home->live = ready;

        live->retired = 1;
        ngx_memory_barrier();

        if (live->requests == 0) {
            ngx_http_wsgi_reaping = NGX_HTTP_WSGI_REAP_NOW;
        }

        live = ready;
    }

    (void) ngx_atomic_fetch_add(&live->requests, 1);
    ctx->counted = 1;

    return live;
}


/* a request is done with its interpreter: under the GIL, anywhere */

void
ngx_http_wsgi_interp_drop(ngx_http_wsgi_interp_t *interp)
{
    if (ngx_atomic_fetch_add(&interp->requests, -1) == 1
        && interp->retired)
    {
        ngx_http_wsgi_reaping = NGX_HTTP_WSGI_REAP_NOW;
    }
}


/*
 * Whether a change waits: the interpreter made for the last one is not
 * taken yet, a script read while it changed is read again a second later,
 * or the interpreters replaced before still end.
 */

ngx_uint_t
ngx_http_wsgi_renew_busy(ngx_http_wsgi_app_t *app, ngx_log_t *log)
{
    ngx_http_wsgi_interp_t  *home;

    home = &ngx_http_wsgi_interp[app->group];

    if (home->ready
        || ngx_current_msec - app->declined < NGX_HTTP_WSGI_RELOAD_CHECK)
    {
        return 1;
    }

    if (ngx_http_wsgi_renew_slot(home)) {
        return 0;
    }

    if (app->waited != app->changes) {
        app->waited = app->changes;

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "wsgi: script \"%s\" changed, and application group "
                      "\"%V\" waits for a new interpreter: the %ui before "
                      "have not ended", app->path.data, &home->group->name,
                      (ngx_uint_t) NGX_HTTP_WSGI_GENERATIONS);
    }

    return 1;
}


static ngx_http_wsgi_interp_t *
ngx_http_wsgi_renew_slot(ngx_http_wsgi_interp_t *home)
{
    ngx_http_wsgi_interp_t  *interp;

    for (interp = ngx_http_wsgi_interp; interp; interp = interp->next) {
        if (interp->spare && interp->group == home->group) {
            return interp;
        }
    }

    return NULL;
}


/*
 * Called by the request that found the change, in its interpreter, which
 * it goes on in with the old application: the new interpreter serves the
 * requests to come.  A failure leaves the group as it was, and the
 * version is not tried again; NGX_DECLINED: it is read again later.
 */

ngx_int_t
ngx_http_wsgi_renew(ngx_http_wsgi_app_t *app, ngx_http_wsgi_interp_t *interp,
    ngx_log_t *log)
{
    ngx_int_t                rc;
    ngx_uint_t               changed;
    ngx_http_wsgi_interp_t  *home, *fresh;

    home = &ngx_http_wsgi_interp[app->group];

    fresh = ngx_http_wsgi_renew_slot(home);
    if (fresh == NULL) {
        return NGX_DECLINED;
    }

    fresh->spare = 0;

    changed = 0;

    rc = ngx_http_wsgi_renew_apps(app, interp, fresh, &changed, log);

    if (rc == NGX_OK) {
        ngx_memory_barrier();
        home->ready = fresh;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "wsgi: application group \"%V\" goes on in a new "
                      "interpreter, the one before ends after its requests "
                      "in flight", &home->group->name);

    } else if (changed) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "wsgi: script \"%s\" changed while it was read, "
                      "it is reloaded later", app->path.data);
        rc = NGX_DECLINED;

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "wsgi: failed to reload script \"%s\" in a new "
                      "interpreter of application group \"%V\", the "
                      "interpreter loaded before goes on; the script is "
                      "tried again when it changes",
                      app->path.data, &home->group->name);
    }

    ngx_http_wsgi_python_switch(interp);

    return rc;
}


/*
 * The new interpreter gets the application that changed and those of the
 * group loaded in the interpreter before; an application that never
 * loaded is imported there by its first request, as before.
 */

static ngx_int_t
ngx_http_wsgi_renew_apps(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_http_wsgi_interp_t *fresh,
    ngx_uint_t *changed, ngx_log_t *log)
{
    ngx_int_t                   rc;
    ngx_uint_t                  i, n;
    ngx_http_wsgi_app_t       **apps, **load;
    ngx_http_wsgi_version_t    *loaded;
    ngx_http_wsgi_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_wsgi_module);

    apps = wmcf->apps.elts;
    n = wmcf->apps.nelts;

    load = PyMem_RawMalloc(n * (sizeof(ngx_http_wsgi_app_t *)
                                + sizeof(ngx_http_wsgi_version_t)));
    if (load == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "wsgi: no memory to reload");
        fresh->spare = 1;
        return NGX_ERROR;
    }

    /* the versions the old interpreter has, should the new one fail */
    loaded = (ngx_http_wsgi_version_t *) &load[n];

    /* the applications, known while the thread is in the interpreter */

    for (i = 0; i < n; i++) {
        load[i] = NULL;

        if (apps[i]->group != app->group
            || apps[i]->interp == ngx_http_wsgi_interp)
        {
            /* another group's, or moved to the main interpreter */
            continue;
        }

        if (apps[i] == app
            || PyList_GET_ITEM(interp->apps, apps[i]->index) != Py_None)
        {
            load[i] = apps[i];
            loaded[i] = apps[i]->loaded;
        }
    }

    rc = ngx_http_wsgi_interp_new(fresh, log);

    for (i = 0; rc == NGX_OK && i < n; i++) {
        if (load[i]) {
            rc = ngx_http_wsgi_renew_import(load[i], fresh, changed, log);
        }
    }

    if (rc == NGX_OK) {
        PyMem_RawFree(load);
        ngx_memzero(&app->failed, sizeof(ngx_http_wsgi_version_t));
        return NGX_OK;
    }

    for (i = 0; i < n; i++) {
        if (load[i]) {
            load[i]->loaded = loaded[i];
        }
    }

    PyMem_RawFree(load);

    if (fresh->is == NULL) {
        /* not made, or ended by ngx_http_wsgi_interp_new() */
        fresh->spare = 1;
        return NGX_ERROR;
    }

    ngx_http_wsgi_log_stream_done(NULL);

    if (ngx_http_wsgi_interp_end(fresh, 0, log) == NGX_OK) {
        fresh->spare = 1;
        return NGX_ERROR;
    }

    /* threads the import started run on: the reaper tries again */

    fresh->retired = 1;
    fresh->running = 1;
    fresh->tried = ngx_current_msec;
    ngx_http_wsgi_reaping = NGX_HTTP_WSGI_REAP_LATER;

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_wsgi_renew_import(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *fresh, ngx_uint_t *changed, ngx_log_t *log)
{
    PyObject    *module, *obj;
    ngx_uint_t   moved;

    moved = 0;

    module = ngx_http_wsgi_app_load(app, &moved);

    if (module == NULL) {
        if (moved) {
            PyErr_Clear();
            *changed = 1;
            return NGX_ERROR;
        }

        ngx_http_wsgi_log_exception(log, "failed to load script \"%s\" in a "
                                    "new interpreter of application group "
                                    "\"%V\"", app->path.data,
                                    &fresh->group->name);
        return NGX_ERROR;
    }

    obj = ngx_http_wsgi_app_callable(app, module, log);

    if (obj == NULL) {
        return NGX_ERROR;
    }

    PyList_SetItem(fresh->apps, app->index, obj);

    ngx_http_wsgi_app_loaded(app, NGX_LOG_NOTICE, "reloaded", log);

    return NGX_OK;
}


/*
 * Ends the retired interpreters that have no requests: the calling thread
 * holds the GIL outside any step, in any interpreter, and is in one of
 * ours after it.  One that threads of the application keep is tried again
 * a second later: the reaper may be the event loop, which may not wait for
 * them.
 */

void
ngx_http_wsgi_interp_reap(void)
{
    ngx_log_t               *log;
    ngx_uint_t               later;
    ngx_http_wsgi_interp_t  *interp, *back;

    if (ngx_http_wsgi_reaping == NGX_HTTP_WSGI_REAP_LATER
        && ngx_current_msec - ngx_http_wsgi_reaped < NGX_HTTP_WSGI_RELOAD_CHECK)
    {
        return;
    }

    ngx_http_wsgi_reaping = 0;
    ngx_memory_barrier();

    ngx_http_wsgi_reaped = ngx_current_msec;

    log = ngx_cycle->log;
    back = ngx_http_wsgi_interp_current();
    later = 0;

    for (interp = ngx_http_wsgi_interp; interp; interp = interp->next) {

        if (!interp->retired || interp->ending || interp->requests
            || interp->is == NULL)
        {
            continue;
        }

        if (interp->running
            && ngx_current_msec - interp->tried < NGX_HTTP_WSGI_RELOAD_CHECK)
        {
            later = 1;
            continue;
        }

        interp->ending = 1;

        ngx_http_wsgi_python_switch(interp);

        /* partial lines that its threads left */
        ngx_http_wsgi_log_stream_done(NULL);

        if (ngx_http_wsgi_interp_end(interp, 0, log) == NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "wsgi: the interpreter replaced in application "
                          "group \"%V\" ended", &interp->group->name);

            if (back == interp) {
                back = ngx_http_wsgi_interp;
            }

            interp->retired = 0;
            interp->running = 0;
            interp->spare = 1;

        } else {
            if (!interp->running) {
                ngx_log_error(NGX_LOG_NOTICE, log, 0,
                              "wsgi: the interpreter replaced in application "
                              "group \"%V\" is not ended yet, threads of the "
                              "application run in it", &interp->group->name);
            }

            interp->running = 1;
            interp->tried = ngx_current_msec;
            later = 1;
        }

        interp->ending = 0;

        ngx_http_wsgi_python_switch(back);
    }

    if (later && ngx_http_wsgi_reaping == 0) {
        ngx_http_wsgi_reaping = NGX_HTTP_WSGI_REAP_LATER;
    }
}
