
/*
 * nginx mod_wsgi: the "ngx" Python module, the types behind the environ
 * and their state, one per interpreter.
 */


#include "ngx_http_wsgi_module.h"


static int ngx_http_wsgi_module_exec(PyObject *m);
static int ngx_http_wsgi_module_traverse(PyObject *m, visitproc visit,
    void *arg);
static int ngx_http_wsgi_module_clear(PyObject *m);
static void ngx_http_wsgi_module_free(void *m);


static PyModuleDef_Slot  ngx_http_wsgi_module_slots[] = {
    { Py_mod_exec, ngx_http_wsgi_module_exec },
    { 0, NULL }
};


static struct PyModuleDef  ngx_http_wsgi_moduledef = {
    PyModuleDef_HEAD_INIT,
    "ngx",
    "nginx mod_wsgi: the types behind the WSGI environ",
    sizeof(ngx_http_wsgi_state_t),
    NULL,
    ngx_http_wsgi_module_slots,
    ngx_http_wsgi_module_traverse,
    ngx_http_wsgi_module_clear,
    ngx_http_wsgi_module_free
};


/* multi-phase: every interpreter has its own module, types and state */

PyObject *
ngx_http_wsgi_module_init(void)
{
    return PyModuleDef_Init(&ngx_http_wsgi_moduledef);
}


static int
ngx_http_wsgi_module_exec(PyObject *m)
{
    ngx_str_t               *key;
    ngx_uint_t               i;
    PyInterpreterState      *is;
    ngx_http_wsgi_state_t   *st;
    ngx_http_wsgi_interp_t  *interp;

    /* the state is found by the interpreter: only ours have it */

    is = PyInterpreterState_Get();

    for (interp = ngx_http_wsgi_interp; interp; interp = interp->next) {
        if (interp->is == is) {
            break;
        }
    }

    if (interp == NULL) {
        PyErr_SetString(PyExc_ImportError, "the \"ngx\" module exists only "
                        "in the interpreters nginx created");
        return -1;
    }

    if (PyModule_AddObjectRef(m, "interpreter", interp->name) != 0) {
        return -1;
    }

    st = PyModule_GetState(m);

    st->input_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_input_spec,
                                              NULL);
    if (st->input_type == NULL
        || PyModule_AddObjectRef(m, "Input", st->input_type) != 0)
    {
        return -1;
    }

    st->errors_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_errors_spec,
                                               NULL);
    if (st->errors_type == NULL
        || PyModule_AddObjectRef(m, "Errors", st->errors_type) != 0)
    {
        return -1;
    }

    st->start_response_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_start_response_spec, NULL);
    if (st->start_response_type == NULL
        || PyModule_AddObjectRef(m, "StartResponse",
                                 st->start_response_type)
           != 0)
    {
        return -1;
    }

    st->write_type = PyType_FromModuleAndSpec(m, &ngx_http_wsgi_write_spec,
                                              NULL);
    if (st->write_type == NULL
        || PyModule_AddObjectRef(m, "Write", st->write_type) != 0)
    {
        return -1;
    }

    st->client_connected_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_client_connected_spec, NULL);
    if (st->client_connected_type == NULL
        || PyModule_AddObjectRef(m, "ClientConnected",
                                 st->client_connected_type)
           != 0)
    {
        return -1;
    }

    st->file_wrapper_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_file_wrapper_spec, NULL);
    if (st->file_wrapper_type == NULL
        || PyModule_AddObjectRef(m, "FileWrapper", st->file_wrapper_type)
           != 0)
    {
        return -1;
    }

    st->log_stream_type = PyType_FromModuleAndSpec(m,
                                   &ngx_http_wsgi_log_stream_spec, NULL);
    if (st->log_stream_type == NULL
        || PyModule_AddObjectRef(m, "LogStream", st->log_stream_type) != 0)
    {
        return -1;
    }

    for (i = 1; i < NGX_HTTP_WSGI_ENV_KEYS; i++) {
        key = ngx_http_wsgi_env_key(i);

        st->keys[i] = PyUnicode_FromStringAndSize((char *) key->data,
                                                  key->len);
        if (st->keys[i] == NULL) {
            return -1;
        }

        PyUnicode_InternInPlace(&st->keys[i]);
    }

    st->version = Py_BuildValue("(ii)", 1, 0);
    st->str_http = PyUnicode_InternFromString("http");
    st->str_https = PyUnicode_InternFromString("https");

    if (st->version == NULL || st->str_http == NULL || st->str_https == NULL)
    {
        return -1;
    }

    return 0;
}


/*
 * The state keeps instances of the module's types (the environ templates'
 * objects, the stdio streams): not tracked by the garbage collector, they
 * hide that the types, and through them the module, are only held in a
 * cycle.  The interpreter's end would not free them: the state goes first.
 */

void
ngx_http_wsgi_module_release(PyObject *m)
{
    if (m != NULL) {
        (void) ngx_http_wsgi_module_clear(m);
    }
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
        Py_VISIT(st->ext_error);
        Py_VISIT(st->ext_name);
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
        Py_CLEAR(st->ext_error);
        Py_CLEAR(st->ext_name);
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
