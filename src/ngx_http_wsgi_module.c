
/*
 * nginx mod_wsgi: directives, configuration and the worker lifecycle.
 */


#include "ngx_http_wsgi_module.h"


static void *ngx_http_wsgi_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_wsgi_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_wsgi_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_wsgi_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_wsgi_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wsgi_var(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_wsgi_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_thread_pool_t *ngx_http_wsgi_thread_pool_default(ngx_conf_t *cf,
    ngx_str_t *name, ngx_uint_t threads, ngx_uint_t max_queue);
static char *ngx_http_wsgi_buffer_size(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_wsgi_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_wsgi_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_wsgi_init_process(ngx_cycle_t *cycle);
static void ngx_http_wsgi_exit_process(ngx_cycle_t *cycle);
static void ngx_http_wsgi_atfork_child(void);


extern ngx_module_t  ngx_thread_pool_module;


/* set in a process the application forked from the worker */
ngx_uint_t  ngx_http_wsgi_forked;


static ngx_conf_num_bounds_t  ngx_http_wsgi_optimize_bounds = {
    ngx_conf_check_num_bounds, 0, 2
};


static ngx_conf_num_bounds_t  ngx_http_wsgi_max_queue_bounds = {
    ngx_conf_check_num_bounds, 1, -1
};


static ngx_conf_post_handler_pt  ngx_http_wsgi_buffer_size_post =
    ngx_http_wsgi_buffer_size;


static ngx_str_t  ngx_http_wsgi_default_pool = ngx_string("wsgi");


static ngx_path_init_t  ngx_http_wsgi_temp_path = {
    ngx_string("wsgi_temp"), { 1, 2, 0 }
};

#define NGX_HTTP_WSGI_DEFAULT_POOL                                            \
    ((ngx_thread_pool_t *) &ngx_http_wsgi_default_pool)

#define NGX_HTTP_WSGI_THREADS    32
#define NGX_HTTP_WSGI_MAX_QUEUE  1024


static ngx_conf_enum_t  ngx_http_wsgi_priorities[] = {
    { ngx_string("normal"), NGX_HTTP_WSGI_PRIORITY_NORMAL },
    { ngx_string("idle"), NGX_HTTP_WSGI_PRIORITY_IDLE },
    { ngx_string("auto"), NGX_HTTP_WSGI_PRIORITY_AUTO },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_wsgi_fallbacks[] = {
    { ngx_string("main"), 1 },
    { ngx_string("off"), 0 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_wsgi_reload_mechanisms[] = {
    { ngx_string("module"), NGX_HTTP_WSGI_RELOAD_MODULE },
    { ngx_string("interpreter"), NGX_HTTP_WSGI_RELOAD_INTERPRETER },
    { ngx_string("process"), NGX_HTTP_WSGI_RELOAD_PROCESS },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_wsgi_commands[] = {

    { ngx_string("wsgi_pass"),
      NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE12,
      ngx_http_wsgi_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_python_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wsgi_python_path,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_enable_subinterpreters"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, subinterpreters),
      NULL },

    { ngx_string("wsgi_use_main_interpreter"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, main_interpreter),
      NULL },

    { ngx_string("wsgi_application_group"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wsgi_application_group,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, group),
      NULL },

    { ngx_string("wsgi_subinterpreter_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, fallback),
      &ngx_http_wsgi_fallbacks },

    { ngx_string("wsgi_script_reloading"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, reloading),
      NULL },

    { ngx_string("wsgi_reload_mechanism"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, mechanism),
      &ngx_http_wsgi_reload_mechanisms },

    { ngx_string("wsgi_python_home"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_wsgi_python_home,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wsgi_main_conf_t, python_home),
      NULL },

    { ngx_string("wsgi_python_executable"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_wsgi_python_executable,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_python_optimize"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wsgi_main_conf_t, optimize),
      &ngx_http_wsgi_optimize_bounds },

    { ngx_string("wsgi_var"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_wsgi_var,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_middleware"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_wsgi_middleware,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_pass_authorization"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, pass_authorization),
      NULL },

    { ngx_string("wsgi_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_wsgi_thread_pool,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_thread_priority"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_wsgi_main_conf_t, priority),
      &ngx_http_wsgi_priorities },

    { ngx_string("wsgi_max_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, max_queue),
      &ngx_http_wsgi_max_queue_bounds },

    { ngx_string("wsgi_allow_ranges"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, allow_ranges),
      NULL },

    { ngx_string("wsgi_cache_validation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, cache_validation),
      NULL },

    { ngx_string("wsgi_optimize_send_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, optimize_send_headers),
      NULL },

    { ngx_string("wsgi_output_buffering"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, output_buffering),
      NULL },

    { ngx_string("wsgi_write_buffering"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, write_buffering),
      NULL },

    { ngx_string("wsgi_write_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, write_buffer_size),
      &ngx_http_wsgi_buffer_size_post },

    { ngx_string("wsgi_temp_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1234,
      ngx_conf_set_path_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, temp_path),
      NULL },

    { ngx_string("wsgi_request_buffering"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, request_buffering),
      NULL },

    { ngx_string("wsgi_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_wsgi_loc_conf_t, buffer_size),
      &ngx_http_wsgi_buffer_size_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_wsgi_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_wsgi_postconfiguration,       /* postconfiguration */

    ngx_http_wsgi_create_main_conf,        /* create main configuration */
    ngx_http_wsgi_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_wsgi_create_loc_conf,         /* create location configuration */
    ngx_http_wsgi_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_wsgi_module = {
    NGX_MODULE_V1,
    &ngx_http_wsgi_module_ctx,             /* module context */
    ngx_http_wsgi_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_wsgi_init_module,             /* init module */
    ngx_http_wsgi_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_wsgi_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_wsgi_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_wsgi_main_conf_t  *wmcf;

    wmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_wsgi_main_conf_t));
    if (wmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wmcf->python_home = { 0, NULL };
     *     wmcf->python_executable = { 0, NULL };
     *     wmcf->workers = 0;
     *     wmcf->thread_pool = NULL;
     *     wmcf->crash = NULL;
     */

    if (ngx_array_init(&wmcf->apps, cf->pool, 4,
                       sizeof(ngx_http_wsgi_app_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_http_wsgi_group_main(cf, wmcf) != NGX_OK) {
        return NULL;
    }

    wmcf->optimize = NGX_CONF_UNSET;
    wmcf->priority = NGX_CONF_UNSET_UINT;

    return wmcf;
}


static char *
ngx_http_wsgi_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_wsgi_main_conf_t *wmcf = conf;

    ngx_http_wsgi_group_t     *groups;
    ngx_http_wsgi_loc_conf_t  *wlcf;

    ngx_conf_init_value(wmcf->optimize, 0);
    ngx_conf_init_uint_value(wmcf->priority, NGX_HTTP_WSGI_PRIORITY_AUTO);

    /* the http level's, for the main interpreter */

    wlcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_wsgi_module);

    if (wlcf->python_path != NGX_CONF_UNSET_PTR) {
        wmcf->python_path = wlcf->python_path;
    }

    groups = wmcf->groups.elts;
    groups[0].python_path = wmcf->python_path;

    return NGX_CONF_OK;
}


/* the applications are known once the locations are merged */

static ngx_int_t
ngx_http_wsgi_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_wsgi_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wsgi_module);

    if (wmcf->apps.nelts) {
        return ngx_http_wsgi_crash_conf(cf, wmcf);
    }

    return NGX_OK;
}


static void *
ngx_http_wsgi_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_wsgi_loc_conf_t  *wlcf;

    wlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_wsgi_loc_conf_t));
    if (wlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wlcf->app = NULL;
     *     wlcf->script = { 0, NULL };
     *     wlcf->callable = { 0, NULL };
     *     wlcf->group = { 0, NULL };
     *     wlcf->location = { 0, NULL };
     *     wlcf->temp_path = NULL;
     */

    wlcf->subinterpreters = NGX_CONF_UNSET;
    wlcf->main_interpreter = NGX_CONF_UNSET;
    wlcf->python_path = NGX_CONF_UNSET_PTR;
    wlcf->fallback = NGX_CONF_UNSET_UINT;
    wlcf->reloading = NGX_CONF_UNSET;
    wlcf->mechanism = NGX_CONF_UNSET_UINT;
    wlcf->vars = NGX_CONF_UNSET_PTR;
    wlcf->middleware = NGX_CONF_UNSET_PTR;
    wlcf->pass_authorization = NGX_CONF_UNSET;
    wlcf->thread_pool = NGX_CONF_UNSET_PTR;
    wlcf->buffer_size = NGX_CONF_UNSET_SIZE;
    wlcf->max_queue = NGX_CONF_UNSET;
    wlcf->allow_ranges = NGX_CONF_UNSET;
    wlcf->cache_validation = NGX_CONF_UNSET;
    wlcf->optimize_send_headers = NGX_CONF_UNSET;
    wlcf->output_buffering = NGX_CONF_UNSET;
    wlcf->write_buffering = NGX_CONF_UNSET;
    wlcf->write_buffer_size = NGX_CONF_UNSET_SIZE;
    wlcf->request_buffering = NGX_CONF_UNSET;

    return wlcf;
}


static char *
ngx_http_wsgi_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_wsgi_loc_conf_t *prev = parent;
    ngx_http_wsgi_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_wsgi_main_conf_t  *wmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wsgi_module);

    /* "if" and "limit_except" blocks run their location's application */

    if (clcf->noname && conf->app == NULL) {
        conf->app = prev->app;
        conf->index = prev->index;
        conf->location = prev->location;
    }

    if (ngx_http_wsgi_group_conf(cf, wmcf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (clcf->lmt_excpt && clcf->handler == NULL && conf->app) {
        clcf->handler = ngx_http_wsgi_handler;
    }

    ngx_conf_merge_ptr_value(conf->vars, prev->vars, NULL);
    ngx_conf_merge_ptr_value(conf->middleware, prev->middleware, NULL);
    ngx_conf_merge_value(conf->pass_authorization, prev->pass_authorization,
                         0);
    ngx_conf_merge_ptr_value(conf->thread_pool, prev->thread_pool,
                             NGX_HTTP_WSGI_DEFAULT_POOL);

    if (conf->app && conf->thread_pool == NGX_HTTP_WSGI_DEFAULT_POOL) {

        /*
         * A plain wsgi_pass never blocks the event loop: "thread_pool wsgi"
         * if declared before the http block, otherwise ours, declared for
         * the first application that runs on it.
         */

        if (wmcf->thread_pool == NULL) {
            wmcf->thread_pool = ngx_http_wsgi_thread_pool_default(cf,
                                                 &ngx_http_wsgi_default_pool,
                                                 NGX_HTTP_WSGI_THREADS,
                                                 NGX_HTTP_WSGI_MAX_QUEUE);
            if (wmcf->thread_pool == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        conf->thread_pool = wmcf->thread_pool;
    }

    if (conf->app && conf->thread_pool) {
        wmcf->pooled = 1;
    }

    ngx_conf_merge_size_value(conf->buffer_size, prev->buffer_size, 65536);
    ngx_conf_merge_value(conf->max_queue, prev->max_queue, 1024);
    ngx_conf_merge_value(conf->allow_ranges, prev->allow_ranges, 0);
    ngx_conf_merge_value(conf->cache_validation, prev->cache_validation, 1);
    ngx_conf_merge_value(conf->optimize_send_headers,
                         prev->optimize_send_headers, 0);
    ngx_conf_merge_value(conf->output_buffering, prev->output_buffering, 0);
    ngx_conf_merge_value(conf->write_buffering, prev->write_buffering, 0);
    ngx_conf_merge_value(conf->request_buffering, prev->request_buffering,
                         1);
    ngx_conf_merge_size_value(conf->write_buffer_size,
                              prev->write_buffer_size, (size_t) ngx_pagesize);

    if (ngx_conf_merge_path_value(cf, &conf->temp_path, prev->temp_path,
                                  &ngx_http_wsgi_temp_path)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_wsgi_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_loc_conf_t *wlcf = conf;

    ngx_str_t                  *value, path, callable;
    ngx_file_info_t             fi;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_wsgi_main_conf_t  *wmcf;

    if (wlcf->script.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    path = value[1];

    if (path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty script path");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(path.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_file_info_n " \"%s\" failed", path.data);
        return NGX_CONF_ERROR;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "script \"%s\" is not a regular file", path.data);
        return NGX_CONF_ERROR;
    }

    if (access((char *) path.data, R_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "script \"%s\" is not readable", path.data);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        callable = value[2];

        if (callable.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty callable name");
            return NGX_CONF_ERROR;
        }

        if (ngx_http_wsgi_dotted_name(&callable) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid callable name \"%V\"", &callable);
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_str_set(&callable, "application");
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_wsgi_module);

    /* the application is added when its group is known, at merge */

    wlcf->script = path;
    wlcf->callable = callable;
    wlcf->file = cf->conf_file->file.name.data;
    wlcf->line = cf->conf_file->line;
    wlcf->index = wmcf->locations++;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_wsgi_handler;

    /* the mount point: a prefix location without its trailing slash */

    wlcf->location = clcf->name;

#if (NGX_PCRE)
    if (clcf->regex) {
        ngx_str_null(&wlcf->location);
    }
#endif

    if (clcf->named) {
        ngx_str_null(&wlcf->location);
    }

    while (wlcf->location.len
           && wlcf->location.data[wlcf->location.len - 1] == '/')
    {
        wlcf->location.len--;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_wsgi_var(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_loc_conf_t *wlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_wsgi_var_t               *var;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty variable name");
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid variable name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (wlcf->vars == NGX_CONF_UNSET_PTR) {
        wlcf->vars = ngx_array_create(cf->pool, 4,
                                      sizeof(ngx_http_wsgi_var_t));
        if (wlcf->vars == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    var = ngx_array_push(wlcf->vars);
    if (var == NULL) {
        return NGX_CONF_ERROR;
    }

    var->key = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &var->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_wsgi_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_wsgi_loc_conf_t *wlcf = conf;

    ngx_str_t  *value;

    if (wlcf->thread_pool != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        wlcf->thread_pool = NULL;
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty thread pool name");
        return NGX_CONF_ERROR;
    }

    if (value[1].len == ngx_http_wsgi_default_pool.len
        && ngx_strncmp(value[1].data, ngx_http_wsgi_default_pool.data,
                       value[1].len)
           == 0)
    {
        /* the module's own pool, declared when the http block ends */
        wlcf->thread_pool = NGX_HTTP_WSGI_DEFAULT_POOL;
        return NGX_CONF_OK;
    }

    /* nginx reports a pool that no "thread_pool" declares */

    wlcf->thread_pool = ngx_thread_pool_add(cf, &value[1]);
    if (wlcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* as if "thread_pool NAME threads=N max_queue=M" were configured */

static ngx_thread_pool_t *
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


static char *
ngx_http_wsgi_buffer_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t *sp = data;

    if (*sp == 0) {
        return "must be positive";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_wsgi_init_module(ngx_cycle_t *cycle)
{
    ngx_http_wsgi_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wsgi_module);

    if (wmcf == NULL || wmcf->apps.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_wsgi_priority_init_module(cycle, wmcf);
}


static ngx_int_t
ngx_http_wsgi_init_process(ngx_cycle_t *cycle)
{
    struct sigaction            sa;
    ngx_core_conf_t            *ccf;
    ngx_http_wsgi_main_conf_t  *wmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_wsgi_module);

    if (wmcf == NULL || wmcf->apps.nelts == 0) {
        return NGX_OK;
    }

    /*
     * nginx's SIGCHLD handler reaps every child with waitpid(-1), before
     * the application could wait for its own; a worker starts none of its
     * own, so the default disposition leaves them to their parents.
     */

    ngx_memzero(&sa, sizeof(struct sigaction));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);

    if (sigaction(SIGCHLD, &sa, NULL) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wsgi: sigaction(SIGCHLD) failed");
        return NGX_ERROR;
    }

    /* any fork: os.fork(), multiprocessing, C extensions */

    if (pthread_atfork(NULL, NULL, ngx_http_wsgi_atfork_child) != 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "wsgi: pthread_atfork() failed");
        return NGX_ERROR;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    wmcf->workers = (ngx_process == NGX_PROCESS_SINGLE)
                    ? 1 : (ngx_uint_t) ccf->worker_processes;

    ngx_http_wsgi_crash_init_process(cycle, wmcf);

    if (ngx_http_wsgi_interp_init(cycle, wmcf) != NGX_OK) {
        /* the error is logged; requests get 500 */
        return NGX_OK;
    }

    if (ngx_http_wsgi_thread_init(cycle, wmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_wsgi_atfork_child(void)
{
    ngx_http_wsgi_forked = 1;
}


static void
ngx_http_wsgi_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_wsgi_interp) {
        ngx_http_wsgi_watchdog_start(cycle);
    }

    ngx_http_wsgi_thread_done(cycle);

    if (ngx_http_wsgi_interp) {
        ngx_http_wsgi_release_deferred();
    }

    ngx_http_wsgi_interp_done(cycle);
}
