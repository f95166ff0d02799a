
/*
 * nginx mod_wsgi: the directives that say which Python runs an
 * application: the interpreter, its paths, the application groups, the
 * middleware stack and the reloading of the script.
 */


#include "ngx_http_wsgi_module.h"
#include <ngx_md5.h>


static ngx_http_wsgi_group_t *ngx_http_wsgi_group_get(ngx_conf_t *cf,
    ngx_http_wsgi_main_conf_t *wmcf, ngx_http_wsgi_loc_conf_t *conf);
static ngx_uint_t ngx_http_wsgi_paths_equal(ngx_array_t *a, ngx_array_t *b);
static ngx_http_wsgi_app_t *ngx_http_wsgi_app_add(ngx_conf_t *cf,
    ngx_http_wsgi_main_conf_t *wmcf, ngx_http_wsgi_loc_conf_t *conf,
    ngx_uint_t group);


static ngx_str_t  ngx_http_wsgi_global = ngx_string("%{GLOBAL}");


/* the main interpreter is group 0, with the http level's wsgi_python_path */

ngx_int_t
ngx_http_wsgi_group_main(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf)
{
    ngx_http_wsgi_group_t  *group;

    if (ngx_array_init(&wmcf->groups, cf->pool, 4,
                       sizeof(ngx_http_wsgi_group_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    group = ngx_array_push(&wmcf->groups);
    if (group == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(group, sizeof(ngx_http_wsgi_group_t));

    return NGX_OK;
}


char *
ngx_http_wsgi_group_conf(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf,
    ngx_http_wsgi_loc_conf_t *prev, ngx_http_wsgi_loc_conf_t *conf)
{
    ngx_http_wsgi_group_t  *group, *groups;

    ngx_conf_merge_value(conf->subinterpreters, prev->subinterpreters, 0);
    ngx_conf_merge_value(conf->main_interpreter, prev->main_interpreter, 0);
    ngx_conf_merge_str_value(conf->group, prev->group, "");
    ngx_conf_merge_ptr_value(conf->python_path, prev->python_path, NULL);
    ngx_conf_merge_uint_value(conf->fallback, prev->fallback, 1);
    ngx_conf_merge_value(conf->reloading, prev->reloading, 0);
    ngx_conf_merge_uint_value(conf->mechanism, prev->mechanism,
                              NGX_HTTP_WSGI_RELOAD_MODULE);

    if (conf->script.data == NULL) {
        return NGX_CONF_OK;
    }

    group = ngx_http_wsgi_group_get(cf, wmcf, conf);
    if (group == NULL) {
        return NGX_CONF_ERROR;
    }

    /* after a group is added: the array may have moved */

    groups = wmcf->groups.elts;

    if (group->index == 0
        && !ngx_http_wsgi_paths_equal(conf->python_path,
                                      groups[0].python_path))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"wsgi_python_path\" of a server or location needs "
                      "its application in a sub-interpreter, for "
                      "\"wsgi_pass\" in %s:%ui", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->reloading
        && conf->mechanism == NGX_HTTP_WSGI_RELOAD_INTERPRETER)
    {
        if (group->index == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"wsgi_reload_mechanism interpreter\" needs its "
                          "application in a sub-interpreter, for "
                          "\"wsgi_pass\" in %s:%ui", conf->file, conf->line);
            return NGX_CONF_ERROR;
        }

        group->renew = 1;
    }

    conf->app = ngx_http_wsgi_app_add(cf, wmcf, conf, group->index);
    if (conf->app == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A named group is its sub-interpreter; unnamed, with sub-interpreters on,
 * each script is a group of its own, as in Apache mod_wsgi.
 */

static ngx_http_wsgi_group_t *
ngx_http_wsgi_group_get(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf,
    ngx_http_wsgi_loc_conf_t *conf)
{
    ngx_str_t               name;
    ngx_uint_t              i;
    ngx_http_wsgi_group_t  *groups, *group;

    groups = wmcf->groups.elts;

    if (conf->main_interpreter
        || (conf->group.len == ngx_http_wsgi_global.len
            && ngx_strncmp(conf->group.data, ngx_http_wsgi_global.data,
                           ngx_http_wsgi_global.len) == 0))
    {
        return &groups[0];
    }

    if (conf->group.len) {
        name = conf->group;

    } else if (conf->subinterpreters) {
        name = conf->script;

    } else {
        return &groups[0];
    }

    for (i = 1; i < wmcf->groups.nelts; i++) {
        if (groups[i].name.len != name.len
            || ngx_strncmp(groups[i].name.data, name.data, name.len) != 0)
        {
            continue;
        }

        if (!ngx_http_wsgi_paths_equal(groups[i].python_path,
                                       conf->python_path))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "application group \"%V\" has another "
                          "\"wsgi_python_path\" in %s:%ui than in %s:%ui",
                          &name, conf->file, conf->line, groups[i].file,
                          groups[i].line);
            return NULL;
        }

        return &groups[i];
    }

    group = ngx_array_push(&wmcf->groups);
    if (group == NULL) {
        return NULL;
    }

    group->name = name;
    group->python_path = conf->python_path;
    group->index = wmcf->groups.nelts - 1;
    group->file = conf->file;
    group->line = conf->line;

    return group;
}


static ngx_uint_t
ngx_http_wsgi_paths_equal(ngx_array_t *a, ngx_array_t *b)
{
    ngx_str_t   *x, *y;
    ngx_uint_t   i;

    if (a == b) {
        return 1;
    }

    if (a == NULL || b == NULL || a->nelts != b->nelts) {
        return 0;
    }

    x = a->elts;
    y = b->elts;

    for (i = 0; i < a->nelts; i++) {
        if (x[i].len != y[i].len
            || ngx_strncmp(x[i].data, y[i].data, x[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * One application object per script, callable, group and reloading: a
 * location that reloads its script does not reload another's.
 */

static ngx_http_wsgi_app_t *
ngx_http_wsgi_app_add(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf,
    ngx_http_wsgi_loc_conf_t *conf, ngx_uint_t group)
{
    u_char                *p;
    ngx_md5_t              md5;
    ngx_uint_t             i;
    u_char                 hash[16];
    ngx_http_wsgi_app_t   *app, **apps;

    apps = wmcf->apps.elts;

    for (i = 0; i < wmcf->apps.nelts; i++) {
        app = apps[i];

        if (app->group == group
            && app->fallback == (ngx_flag_t) conf->fallback
            && app->reloading == conf->reloading
            && app->mechanism == conf->mechanism
            && app->path.len == conf->script.len
            && ngx_strcmp(app->path.data, conf->script.data) == 0
            && app->callable.len == conf->callable.len
            && ngx_strcmp(app->callable.data, conf->callable.data) == 0)
        {
            return app;
        }
    }

    app = ngx_pcalloc(cf->pool, sizeof(ngx_http_wsgi_app_t));
    if (app == NULL) {
        return NULL;
    }

    app->path = conf->script;
    app->callable = conf->callable;
    app->index = wmcf->apps.nelts;
    app->group = group;
    app->fallback = conf->fallback;
    app->reloading = conf->reloading;
    app->mechanism = conf->mechanism;

    /* the script's module name, unique per path, as Apache mod_wsgi */

    app->module.data = ngx_pnalloc(cf->pool, sizeof("_wsgi_") - 1 + 32 + 1);
    if (app->module.data == NULL) {
        return NULL;
    }

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, app->path.data, app->path.len);
    ngx_md5_final(hash, &md5);

    p = ngx_cpymem(app->module.data, "_wsgi_", sizeof("_wsgi_") - 1);
    p = ngx_hex_dump(p, hash, 16);
    *p = '\0';

    app->module.len = p - app->module.data;

    apps = ngx_array_push(&wmcf->apps);
    if (apps == NULL) {
        return NULL;
    }

    *apps = app;

    return app;
}


/* a Python name, or dotted names: "app", "obj.wsgi_app" */

ngx_int_t
ngx_http_wsgi_dotted_name(ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < name->len; i++) {
        if (name->data[i] == '_' || ngx_http_wsgi_isalnum(name->data[i])) {
            if (ngx_http_wsgi_isdigit(name->data[i])
                && (i == 0 || name->data[i - 1] == '.'))
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (name->data[i] == '.' && i > 0
            && name->data[i - 1] != '.' && i + 1 < name->len)
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_wsgi_python_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_loc_conf_t *wlcf = conf;

    u_char     *p, *last, *sep;
    ngx_str_t  *value, *dir;

    if (wlcf->python_path != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    wlcf->python_path = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (wlcf->python_path == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    p = value[1].data;
    last = p + value[1].len;

    while (p < last) {
        sep = ngx_strlchr(p, last, ':');
        if (sep == NULL) {
            sep = last;
        }

        if (sep == p) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty directory in \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        dir = ngx_array_push(wlcf->python_path);
        if (dir == NULL) {
            return NGX_CONF_ERROR;
        }

        dir->len = sep - p;
        dir->data = p;

        if (ngx_conf_full_name(cf->cycle, dir, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        p = sep + 1;
    }

    if (wlcf->python_path->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty directory in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_wsgi_application_group(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty application group name");
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


char *
ngx_http_wsgi_middleware(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_loc_conf_t *wlcf = conf;

    ngx_str_t                   *value;
    ngx_http_wsgi_middleware_t  *mw;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty middleware module name");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_wsgi_dotted_name(&value[1]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid middleware module name \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (value[2].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty callable name");
            return NGX_CONF_ERROR;
        }

        if (ngx_http_wsgi_dotted_name(&value[2]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid callable name \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    if (wlcf->middleware == NGX_CONF_UNSET_PTR) {
        wlcf->middleware = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_wsgi_middleware_t));
        if (wlcf->middleware == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    mw = ngx_array_push(wlcf->middleware);
    if (mw == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the parser's words are null-terminated */

    mw->module = value[1];

    if (cf->args->nelts == 3) {
        mw->callable = value[2];

    } else {
        ngx_str_set(&mw->callable, "middleware");
    }

    return NGX_CONF_OK;
}



char *
ngx_http_wsgi_python_home(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_main_conf_t *wmcf = conf;

    ngx_str_t        *value;
    ngx_file_info_t   fi;

    if (wmcf->python_home.data) {
        return "is duplicate";
    }

    if (wmcf->python_executable.data) {
        return "conflicts with \"wsgi_python_executable\"";
    }

    value = cf->args->elts;

    wmcf->python_home = value[1];

    if (wmcf->python_home.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty directory");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &wmcf->python_home, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(wmcf->python_home.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_file_info_n " \"%s\" failed",
                           wmcf->python_home.data);
        return NGX_CONF_ERROR;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is not a directory",
                           wmcf->python_home.data);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The interpreter finds its prefix, and a virtualenv, from this path, as
 * python started from a shell would; wsgi_python_home would name the
 * prefix itself, so the two exclude each other.
 */

char *
ngx_http_wsgi_python_executable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_wsgi_main_conf_t *wmcf = conf;

    ngx_str_t        *value;
    ngx_file_info_t   fi;

    if (wmcf->python_executable.data) {
        return "is duplicate";
    }

    if (wmcf->python_home.data) {
        return "conflicts with \"wsgi_python_home\"";
    }

    value = cf->args->elts;

    wmcf->python_executable = value[1];

    if (wmcf->python_executable.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty path");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &wmcf->python_executable, 0)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (wmcf->python_executable.len >= NGX_MAX_PATH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is too long",
                           &wmcf->python_executable);
        return NGX_CONF_ERROR;
    }

    /* a symlink, as a virtualenv's bin/python3, is followed */

    if (ngx_file_info(wmcf->python_executable.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_file_info_n " \"%s\" failed",
                           wmcf->python_executable.data);
        return NGX_CONF_ERROR;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is not a regular file",
                           wmcf->python_executable.data);
        return NGX_CONF_ERROR;
    }

    if (access((char *) wmcf->python_executable.data, X_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\" is not executable",
                           wmcf->python_executable.data);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
