
/*
 * nginx mod_wsgi: the environ dict, built in a step from the snapshot
 * (snapshot.c).  It starts as a copy of its location's template, which
 * holds the last request's values of keys that seldom change and every
 * well-known key seen before: a value put in place costs less than a key
 * added, which would grow (rehash) the copy.  Values are cached, so a
 * repeated value is the same str.
 */


#include "ngx_http_wsgi_module.h"


static ngx_http_wsgi_template_t *ngx_http_wsgi_environ_template(
    ngx_http_wsgi_state_t *st, ngx_http_wsgi_snapshot_t *snap);
static ngx_int_t ngx_http_wsgi_environ_objects(ngx_http_wsgi_template_t *t,
    ngx_http_wsgi_ctx_t *ctx);
static PyObject *ngx_http_wsgi_environ_value(ngx_http_wsgi_state_t *st,
    ngx_uint_t known, u_char *data, size_t len);


/* the keys whose values are kept in the template */

static const uint64_t  ngx_http_wsgi_stable =
      (1ULL << NGX_HTTP_WSGI_ENV_REQUEST_METHOD)
    | (1ULL << NGX_HTTP_WSGI_ENV_SCRIPT_NAME)
    | (1ULL << NGX_HTTP_WSGI_ENV_QUERY_STRING)
    | (1ULL << NGX_HTTP_WSGI_ENV_CONTENT_TYPE)
    | (1ULL << NGX_HTTP_WSGI_ENV_SERVER_NAME)
    | (1ULL << NGX_HTTP_WSGI_ENV_SERVER_PORT)
    | (1ULL << NGX_HTTP_WSGI_ENV_SERVER_PROTOCOL)
    | (1ULL << NGX_HTTP_WSGI_ENV_REMOTE_ADDR)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTPS)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_HOST)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_USER_AGENT)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_ACCEPT)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_ACCEPT_ENCODING)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_ACCEPT_LANGUAGE)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_CONNECTION)
    | (1ULL << NGX_HTTP_WSGI_ENV_HTTP_CACHE_CONTROL);


PyObject *
ngx_http_wsgi_environ(ngx_http_wsgi_ctx_t *ctx)
{
    uint64_t                   bit, seen, gone, put;
    PyObject                  *env, *key, *value;
    ngx_uint_t                 i, dynamic;
    ngx_http_wsgi_env_t       *kv;
    ngx_http_wsgi_state_t     *st;
    ngx_http_wsgi_template_t  *t;

    st = ngx_http_wsgi_state();

    t = ngx_http_wsgi_environ_template(st, &ctx->snap);
    if (t == NULL) {
        return NULL;
    }

    if (ngx_http_wsgi_environ_objects(t, ctx) != NGX_OK) {
        return NULL;
    }

    env = PyDict_Copy(t->environ);
    if (env == NULL) {
        return NULL;
    }

    /* keys this request has not go first: a wsgi_var of that name stays */

    seen = 0;
    kv = ctx->snap.env.elts;

    for (i = 0; i < ctx->snap.env.nelts; i++) {
        seen |= 1ULL << kv[i].known;
    }

    gone = (t->present | t->held) & ~seen;

    for (i = 1; gone; i++) {
        bit = 1ULL << i;

        if (!(gone & bit)) {
            continue;
        }

        gone &= ~bit;

        if (PyDict_DelItem(env, st->keys[i]) != 0) {
            goto failed;
        }

        if (t->present & bit) {
            t->present &= ~bit;
            t->values[i] = NULL;

            if (PyDict_DelItem(t->environ, st->keys[i]) != 0) {
                goto failed;
            }
        }
    }

    put = 0;
    dynamic = 0;

    for (i = 0; i < ctx->snap.env.nelts; i++) {

        bit = 1ULL << kv[i].known;

        if (kv[i].known && (ngx_http_wsgi_stable & bit)) {
            value = t->values[kv[i].known];

            if (value != NULL
                && (size_t) PyUnicode_GET_LENGTH(value) == kv[i].value.len
                && (kv[i].value.len == 0
                    || ngx_memcmp(PyUnicode_1BYTE_DATA(value),
                                  kv[i].value.data, kv[i].value.len)
                       == 0))
            {
                /* in the copy already */
                continue;
            }

            value = ngx_http_wsgi_environ_value(st, kv[i].known,
                                                kv[i].value.data,
                                                kv[i].value.len);
            if (value == NULL) {
                goto failed;
            }

            key = st->keys[kv[i].known];

            /* the template follows, for the requests to come */

            if (PyDict_SetItem(env, key, value) != 0
                || PyDict_SetItem(t->environ, key, value) != 0)
            {
                Py_DECREF(value);
                goto failed;
            }

            t->values[kv[i].known] = value;
            t->present |= bit;

            Py_DECREF(value);
            continue;
        }

        if (kv[i].known) {
            key = Py_NewRef(st->keys[kv[i].known]);
            value = ngx_http_wsgi_environ_value(st, kv[i].known,
                                                kv[i].value.data,
                                                kv[i].value.len);

        } else {
            dynamic = 1;

            key = PyUnicode_DecodeLatin1((char *) kv[i].key.data,
                                         kv[i].key.len, NULL);
            if (key == NULL) {
                goto failed;
            }

            /* PEP 3333: the request's bytes, decoded as latin-1 */

            value = PyUnicode_DecodeLatin1((char *) kv[i].value.data,
                                           kv[i].value.len, NULL);
        }

        if (value == NULL) {
            Py_DECREF(key);
            goto failed;
        }

        /* a key set twice (a wsgi_var after a header) has the later value */

        if (kv[i].known
            && value == t->values[kv[i].known]
            && !(put & bit))
        {
            /* in the copy already */

            Py_DECREF(key);
            Py_DECREF(value);
            continue;
        }

        /* the template gets the key, for the copies to come */

        if (PyDict_SetItem(env, key, value) != 0
            || (kv[i].known
                && !(t->held & bit)
                && PyDict_SetItem(t->environ, key, value) != 0))
        {
            Py_DECREF(key);
            Py_DECREF(value);
            goto failed;
        }

        if (kv[i].known && !(t->held & bit)) {
            t->held |= bit;
            t->values[kv[i].known] = value;
        }

        put |= bit;

        Py_DECREF(key);
        Py_DECREF(value);
    }

    /* what only the server sets: a wsgi_var cannot take it over */

#define ngx_http_wsgi_set(k, v)                                               \
    (PyDict_SetItem(env, st->keys[NGX_HTTP_WSGI_ENV_ ## k], v) != 0)

    if (dynamic
        && (ngx_http_wsgi_set(WSGI_URL_SCHEME, st->str_http)
            || ngx_http_wsgi_set(WSGI_INPUT, t->input)
            || ngx_http_wsgi_set(WSGI_ERRORS, t->errors)
            || ngx_http_wsgi_set(NGX_CLIENT_CONNECTED, t->connected)))
    {
        goto failed;
    }

    if (ctx->snap.https && ngx_http_wsgi_set(WSGI_URL_SCHEME, st->str_https))
    {
        goto failed;
    }

#undef ngx_http_wsgi_set

    ctx->input = Py_NewRef(t->input);
    ctx->errors = Py_NewRef(t->errors);

    return env;

failed:

    Py_DECREF(env);
    return NULL;
}


/* the template's request objects are reused when nobody else holds them */

static ngx_int_t
ngx_http_wsgi_environ_objects(ngx_http_wsgi_template_t *t,
    ngx_http_wsgi_ctx_t *ctx)
{
    PyObject               *obj;
    ngx_http_wsgi_state_t  *st;

    st = ngx_http_wsgi_state();

#define ngx_http_wsgi_replace(field, k, create)                               \
    obj = create;                                                             \
    if (obj == NULL                                                           \
        || PyDict_SetItem(t->environ, st->keys[NGX_HTTP_WSGI_ENV_ ## k], obj) \
           != 0)                                                              \
    {                                                                         \
        Py_XDECREF(obj);                                                      \
        return NGX_ERROR;                                                     \
    }                                                                         \
    t->field = obj;                                                           \
    Py_DECREF(obj)

    if (t->input && Py_REFCNT(t->input) == 1) {
        ngx_http_wsgi_input_rebind(t->input, ctx);

    } else {
        ngx_http_wsgi_replace(input, WSGI_INPUT,
                              ngx_http_wsgi_input_new(ctx));
    }

    if (t->errors && Py_REFCNT(t->errors) == 1) {
        ngx_http_wsgi_errors_rebind(t->errors, ctx->log);

    } else {
        ngx_http_wsgi_replace(errors, WSGI_ERRORS,
                              ngx_http_wsgi_errors_new(ctx->log,
                                                       NGX_LOG_ERR));
    }

    if (t->connected && Py_REFCNT(t->connected) == 1) {
        ngx_http_wsgi_start_response_rebind(t->connected,
                                            ctx->start_response);

    } else {
        ngx_http_wsgi_replace(connected, NGX_CLIENT_CONNECTED,
                     ngx_http_wsgi_start_response_connected(
                                                      ctx->start_response));
    }

#undef ngx_http_wsgi_replace

    return NGX_OK;
}


/* the template of the request's location, made on its first request */

static ngx_http_wsgi_template_t *
ngx_http_wsgi_environ_template(ngx_http_wsgi_state_t *st,
    ngx_http_wsgi_snapshot_t *snap)
{
    size_t                     n;
    PyObject                  *d, *software;
    ngx_http_wsgi_template_t  *t;

    if (snap->location < st->ntemplates
        && st->templates[snap->location].environ != NULL)
    {
        return &st->templates[snap->location];
    }

    if (snap->location >= st->ntemplates) {
        n = snap->location + 8;

        t = PyMem_Realloc(st->templates, n * sizeof(ngx_http_wsgi_template_t));
        if (t == NULL) {
            PyErr_NoMemory();
            return NULL;
        }

        ngx_memzero(&t[st->ntemplates],
                    (n - st->ntemplates) * sizeof(ngx_http_wsgi_template_t));

        st->templates = t;
        st->ntemplates = n;
    }

    d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }

    software = PyUnicode_FromStringAndSize(NGINX_VER, sizeof(NGINX_VER) - 1);
    if (software == NULL) {
        Py_DECREF(d);
        return NULL;
    }

#define ngx_http_wsgi_set(k, v)                                               \
    (PyDict_SetItem(d, st->keys[NGX_HTTP_WSGI_ENV_ ## k], v) != 0)

    if (ngx_http_wsgi_set(SERVER_SOFTWARE, software)
        || ngx_http_wsgi_set(WSGI_VERSION, st->version)
        || ngx_http_wsgi_set(WSGI_URL_SCHEME, st->str_http)
        || ngx_http_wsgi_set(WSGI_MULTITHREAD,
                             snap->multithread ? Py_True : Py_False)
        || ngx_http_wsgi_set(WSGI_MULTIPROCESS,
                             snap->multiprocess ? Py_True : Py_False)
        || ngx_http_wsgi_set(WSGI_RUN_ONCE, Py_False)
        || ngx_http_wsgi_set(WSGI_INPUT_TERMINATED, Py_True)
        || ngx_http_wsgi_set(WSGI_FILE_WRAPPER, st->file_wrapper_type)
        || PyDict_SetItemString(d, "mod_wsgi.application_group",
                                ngx_http_wsgi_interp_current()->name)
           != 0)
    {
        Py_DECREF(software);
        Py_DECREF(d);
        return NULL;
    }

#undef ngx_http_wsgi_set

    Py_DECREF(software);

    t = &st->templates[snap->location];

    ngx_memzero(t, sizeof(ngx_http_wsgi_template_t));
    t->environ = d;

    return t;
}


/* a new reference to the str of a well-known key's value */

static PyObject *
ngx_http_wsgi_environ_value(ngx_http_wsgi_state_t *st, ngx_uint_t known,
    u_char *data, size_t len)
{
    PyObject  *value;

    value = st->values[known];

    if (value != NULL
        && (size_t) PyUnicode_GET_LENGTH(value) == len
        && (len == 0
            || ngx_memcmp(PyUnicode_1BYTE_DATA(value), data, len) == 0))
    {
        return Py_NewRef(value);
    }

    value = PyUnicode_DecodeLatin1((char *) data, len, NULL);

    if (value != NULL && len <= NGX_HTTP_WSGI_CACHED_VALUE) {
        Py_XSETREF(st->values[known], Py_NewRef(value));
    }

    return value;
}
