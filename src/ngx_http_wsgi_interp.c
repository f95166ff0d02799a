
/*
 * nginx mod_wsgi: the interpreter of a worker process, the "ngx" Python
 * module and the GIL.
 */


#include "ngx_http_wsgi_module.h"


static int ngx_http_wsgi_module_traverse(PyObject *m, visitproc visit,
    void *arg);
static int ngx_http_wsgi_module_clear(PyObject *m);
static void ngx_http_wsgi_module_free(void *m);
static ngx_int_t ngx_http_wsgi_interp_config(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf, PyConfig *config);
static ngx_int_t ngx_http_wsgi_interp_setup(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
static ngx_int_t ngx_http_wsgi_interp_stdio(void);


/* NULL until Python runs in this worker */
ngx_http_wsgi_interp_t  *ngx_http_wsgi_interp;

static ngx_http_wsgi_interp_t  ngx_http_wsgi_main_interp;

/* the thread state of the calling thread, created on its first step */
static ngx_http_wsgi_tls PyThreadState  *ngx_http_wsgi_tstate;

/* how many enters of the calling thread hold the GIL: they nest */
static ngx_http_wsgi_tls ngx_uint_t      ngx_http_wsgi_depth;


static struct PyModuleDef  ngx_http_wsgi_moduledef = {
    PyModuleDef_HEAD_INIT,
    "ngx",
    "nginx mod_wsgi: the types behind the WSGI environ",
    sizeof(ngx_http_wsgi_state_t),
    NULL,
    NULL,
    ngx_http_wsgi_module_traverse,
    ngx_http_wsgi_module_clear,
    ngx_http_wsgi_module_free
};


static PyObject *
ngx_http_wsgi_module_init(void)
{
    PyObject               *m;
    ngx_str_t              *key;
    ngx_uint_t              i;
    ngx_http_wsgi_state_t  *st;

    m = PyModule_Create(&ngx_http_wsgi_moduledef);
    if (m == NULL) {
        return NULL;
    }

    st = PyModule_GetState(m);

    st->input_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_input_spec,
                                              NULL);
    if (st->input_type == NULL
        || PyModule_AddObjectRef(m, "Input", st->input_type) != 0)
    {
        goto failed;
    }

    st->errors_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_errors_spec,
                                               NULL);
    if (st->errors_type == NULL
        || PyModule_AddObjectRef(m, "Errors", st->errors_type) != 0)
    {
        goto failed;
    }

    st->start_response_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_start_response_spec, NULL);
    if (st->start_response_type == NULL
        || PyModule_AddObjectRef(m, "StartResponse",
                                 st->start_response_type)
           != 0)
    {
        goto failed;
    }

    st->write_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_write_spec,
                                              NULL);
    if (st->write_type == NULL
        || PyModule_AddObjectRef(m, "Write", st->write_type) != 0)
    {
        goto failed;
    }

    st->client_connected_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_client_connected_spec, NULL);
    if (st->client_connected_type == NULL
        || PyModule_AddObjectRef(m, "ClientConnected",
                                 st->client_connected_type)
           != 0)
    {
        goto failed;
    }

    st->file_wrapper_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_file_wrapper_spec, NULL);
    if (st->file_wrapper_type == NULL
        || PyModule_AddObjectRef(m, "FileWrapper", st->file_wrapper_type)
           != 0)
    {
        goto failed;
    }

    st->log_stream_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_log_stream_spec, NULL);
    if (st->log_stream_type == NULL
        || PyModule_AddObjectRef(m, "LogStream", st->log_stream_type) != 0)
    {
        goto failed;
    }

    for (i = 1; i < NGX_HTTP_WSGI_ENV_KEYS; i++) {
        key = ngx_http_wsgi_env_key(i);

        st->keys[i] = PyUnicode_FromStringAndSize((char *) key->data,
                                                  key->len);
        if (st->keys[i] == NULL) {
            goto failed;
        }

        PyUnicode_InternInPlace(&st->keys[i]);
    }

    st->version = Py_BuildValue("(ii)", 1, 0);
    st->str_http = PyUnicode_InternFromString("http");
    st->str_https = PyUnicode_InternFromString("https");

    if (st->version == NULL || st->str_http == NULL || st->str_https == NULL)
    {
        goto failed;
    }

    return m;

failed:

    Py_DECREF(m);
    return NULL;
}


static int
ngx_http_wsgi_module_traverse(PyObject *m, visitproc visit, void *arg)
{
    ngx_uint_t              i;
    ngx_http_wsgi_state_t  *st;

    st = PyModule_GetState(m);

    if (st) {
        Py_VISIT(st->input_type);
        Py_VISIT(st->errors_type);
        Py_VISIT(st->start_response_type);
        Py_VISIT(st->write_type);
        Py_VISIT(st->client_connected_type);
        Py_VISIT(st->file_wrapper_type);
        Py_VISIT(st->log_stream_type);
        Py_VISIT(st->stdio[0]);
        Py_VISIT(st->stdio[1]);
        for (i = 0; i < st->ntemplates; i++) {
            Py_VISIT(st->templates[i].environ);
        }
        for (i = 0; i < st->nmiddleware; i++) {
            Py_VISIT(st->middleware[i]);
        }
    }

    return 0;
}


static int
ngx_http_wsgi_module_clear(PyObject *m)
{
    ngx_uint_t              i;
    ngx_http_wsgi_state_t  *st;

    st = PyModule_GetState(m);

    if (st) {
        for (i = 0; i < NGX_HTTP_WSGI_ENV_KEYS; i++) {
            Py_CLEAR(st->keys[i]);
            Py_CLEAR(st->values[i]);
        }

        for (i = 0; i < st->ntemplates; i++) {
            Py_CLEAR(st->templates[i].environ);
        }

        for (i = 0; i < NGX_HTTP_WSGI_CHECKED; i++) {
            Py_CLEAR(st->checked[i].str);
        }

        PyMem_Free(st->templates);
        st->templates = NULL;
        st->ntemplates = 0;

        for (i = 0; i < st->nmiddleware; i++) {
            Py_CLEAR(st->middleware[i]);
        }

        PyMem_Free(st->middleware);
        st->middleware = NULL;
        st->nmiddleware = 0;

        Py_CLEAR(st->input_type);
        Py_CLEAR(st->errors_type);
        Py_CLEAR(st->start_response_type);
        Py_CLEAR(st->write_type);
        Py_CLEAR(st->client_connected_type);
        Py_CLEAR(st->file_wrapper_type);
        Py_CLEAR(st->stdio[0]);
        Py_CLEAR(st->stdio[1]);
        Py_CLEAR(st->log_stream_type);
        Py_CLEAR(st->version);
        Py_CLEAR(st->str_http);
        Py_CLEAR(st->str_https);
    }

    return 0;
}


static void
ngx_http_wsgi_module_free(void *m)
{
    (void) ngx_http_wsgi_module_clear(m);
}


PyThreadState *
ngx_http_wsgi_python_enter(void)
{
    PyThreadState  *ts;

    ts = ngx_http_wsgi_tstate;

    if (ts == NULL) {
        ts = PyThreadState_New(
                 PyThreadState_GetInterpreter(ngx_http_wsgi_interp->main));
        ngx_http_wsgi_tstate = ts;
    }

    if (ngx_http_wsgi_depth++ == 0) {
        PyEval_RestoreThread(ts);
    }

    return ts;
}


void
ngx_http_wsgi_python_leave(PyThreadState *ts)
{
    if (--ngx_http_wsgi_depth == 0) {
        (void) PyEval_SaveThread();
    }
}


ngx_int_t
ngx_http_wsgi_interp_init(ngx_cycle_t *cycle, ngx_http_wsgi_main_conf_t *wmcf)
{
    PyConfig  config;
    PyStatus  status;

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

    ngx_http_wsgi_main_interp.log = cycle->log;
    ngx_http_wsgi_main_interp.main = PyThreadState_Get();
    ngx_http_wsgi_interp = &ngx_http_wsgi_main_interp;
    ngx_http_wsgi_tstate = ngx_http_wsgi_main_interp.main;

    if (ngx_http_wsgi_interp_setup(cycle, wmcf) != NGX_OK) {
        ngx_http_wsgi_log_exception(cycle->log, "Python setup failed");
        (void) Py_FinalizeEx();
        ngx_http_wsgi_interp = NULL;
        ngx_http_wsgi_tstate = NULL;
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0, "wsgi: Python %s started",
                  Py_GetVersion());

    /* the worker runs Python only inside steps */

    (void) PyEval_SaveThread();

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_interp_config(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf, PyConfig *config)
{
    PyStatus          status;
    ngx_file_info_t   fi;
    u_char            path[NGX_MAX_PATH];

    config->install_signal_handlers = 0;
    config->parse_argv = 0;
    config->configure_c_stdio = 0;
    config->optimization_level = (int) wmcf->optimize;

    if (wmcf->python_home.len) {
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
ngx_http_wsgi_interp_setup(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf)
{
    ngx_int_t                i;
    PyObject                *sys_path, *dir;
    ngx_str_t               *dirs;
    ngx_http_wsgi_app_t    **apps;
    ngx_http_wsgi_interp_t  *interp;

    interp = ngx_http_wsgi_interp;

    interp->module = PyImport_ImportModule("ngx");
    if (interp->module == NULL) {
        return NGX_ERROR;
    }

    interp->state = PyModule_GetState(interp->module);

    interp->multiprocess = (wmcf->workers > 1);

    if (wmcf->python_path) {
        /* borrowed */
        sys_path = PySys_GetObject("path");
        if (sys_path == NULL || !PyList_Check(sys_path)) {
            PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
            return NGX_ERROR;
        }

        dirs = wmcf->python_path->elts;

        for (i = wmcf->python_path->nelts - 1; i >= 0; i--) {
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
    }

    if (ngx_http_wsgi_interp_stdio() != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_wsgi_crash_python() != NGX_OK) {
        return NGX_ERROR;
    }

    interp->apps = PyList_New(wmcf->apps.nelts);
    if (interp->apps == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < (ngx_int_t) wmcf->apps.nelts; i++) {
        PyList_SET_ITEM(interp->apps, i, Py_NewRef(Py_None));
    }

    /* import at start, so that the first request is not slow */

    apps = wmcf->apps.elts;

    for (i = 0; i < (ngx_int_t) wmcf->apps.nelts; i++) {
        if (ngx_http_wsgi_crash_contained(apps[i])) {
            continue;
        }

        Py_XDECREF(ngx_http_wsgi_app_get(apps[i], cycle->log));
        ngx_http_wsgi_forked_check(cycle->log);
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


void
ngx_http_wsgi_interp_done(ngx_cycle_t *cycle)
{
    ngx_http_wsgi_interp_t  *interp;

    interp = ngx_http_wsgi_interp;

    if (interp == NULL) {
        return;
    }

    PyEval_RestoreThread(interp->main);

    /* partial lines that threads left, before the log goes */

    ngx_http_wsgi_log_stream_done(NULL);

    Py_CLEAR(interp->apps);
    interp->state = NULL;
    Py_CLEAR(interp->module);

    if (Py_FinalizeEx() != 0) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "wsgi: Python finalisation reported an error");
    }

    ngx_http_wsgi_interp = NULL;
    ngx_http_wsgi_tstate = NULL;
}
