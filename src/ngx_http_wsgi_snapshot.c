
/*
 * nginx mod_wsgi: the request's snapshot, the nginx side of the environ,
 * copied on the event loop before the first step.  The converters work on
 * plain memory and know nothing of the request.
 */


#include "ngx_http_wsgi_module.h"


#define NGX_HTTP_WSGI_PORT_LEN  (sizeof("65535") - 1)

#define ngx_http_wsgi_is_script_name(key)                                     \
    ((key)->len == sizeof("SCRIPT_NAME") - 1                                  \
     && ngx_strncmp((key)->data, "SCRIPT_NAME", (key)->len) == 0)


static size_t ngx_http_wsgi_port(u_char *p, in_port_t port);
static ngx_int_t ngx_http_wsgi_env_add(ngx_http_wsgi_snapshot_t *snap,
    ngx_uint_t known, u_char *key, size_t key_len, u_char *value,
    size_t value_len);
static ngx_int_t ngx_http_wsgi_snapshot_headers(ngx_http_request_t *r,
    ngx_http_wsgi_loc_conf_t *wlcf, ngx_http_wsgi_snapshot_t *snap);
static ngx_int_t ngx_http_wsgi_snapshot_body(ngx_http_request_t *r,
    ngx_http_wsgi_snapshot_t *snap);


static ngx_str_t  ngx_http_wsgi_env_keys[] = {
    ngx_null_string,
    ngx_string("REQUEST_METHOD"),
    ngx_string("SCRIPT_NAME"),
    ngx_string("PATH_INFO"),
    ngx_string("QUERY_STRING"),
    ngx_string("REQUEST_URI"),
    ngx_string("CONTENT_TYPE"),
    ngx_string("CONTENT_LENGTH"),
    ngx_string("SERVER_NAME"),
    ngx_string("SERVER_PORT"),
    ngx_string("SERVER_PROTOCOL"),
    ngx_string("SERVER_SOFTWARE"),
    ngx_string("REMOTE_ADDR"),
    ngx_string("REMOTE_PORT"),
    ngx_string("HTTPS"),
    ngx_string("HTTP_HOST"),
    ngx_string("HTTP_USER_AGENT"),
    ngx_string("HTTP_ACCEPT"),
    ngx_string("HTTP_ACCEPT_ENCODING"),
    ngx_string("HTTP_ACCEPT_LANGUAGE"),
    ngx_string("HTTP_CONNECTION"),
    ngx_string("HTTP_COOKIE"),
    ngx_string("HTTP_REFERER"),
    ngx_string("HTTP_CACHE_CONTROL"),
    ngx_string("HTTP_X_FORWARDED_FOR"),
    ngx_string("wsgi.version"),
    ngx_string("wsgi.url_scheme"),
    ngx_string("wsgi.input"),
    ngx_string("wsgi.errors"),
    ngx_string("wsgi.multithread"),
    ngx_string("wsgi.multiprocess"),
    ngx_string("wsgi.run_once"),
    ngx_string("wsgi.input_terminated"),
    ngx_string("wsgi.file_wrapper"),
    ngx_string("ngx.client_connected"),
};


ngx_str_t *
ngx_http_wsgi_env_key(ngx_uint_t known)
{
    return &ngx_http_wsgi_env_keys[known];
}


/*
 * "Accept-Encoding" -> "HTTP_ACCEPT_ENCODING", dst of len + 5 bytes; 0 for
 * a name with "_", which would let "X_Foo" pose as "X-Foo".
 */

size_t
ngx_http_wsgi_header_key(u_char *dst, u_char *name, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0) {
        return 0;
    }

    dst = ngx_cpymem(dst, "HTTP_", 5);

    for (i = 0; i < len; i++) {
        c = name[i];

        if (c == '-') {
            c = '_';

        } else if (c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';

        } else if (!ngx_http_wsgi_isalnum(c)) {
            return 0;
        }

        dst[i] = c;
    }

    return len + 5;
}


/* SCRIPT_NAME's length: "/app" mounts "/app" and "/app/x", not "/appx" */

size_t
ngx_http_wsgi_script_name(u_char *uri, size_t len, u_char *mount,
    size_t mount_len)
{
    if (mount_len == 0
        || len < mount_len
        || ngx_memcmp(uri, mount, mount_len) != 0
        || (len > mount_len && uri[mount_len] != '/'))
    {
        return 0;
    }

    return mount_len;
}


/*
 * The converters above need neither nginx's runtime nor Python:
 * fuzz/fuzz_environ.c compiles this file with NGX_HTTP_WSGI_FUZZ for them.
 */

#if !(NGX_HTTP_WSGI_FUZZ)


ngx_int_t
ngx_http_wsgi_snapshot(ngx_http_request_t *r, ngx_http_wsgi_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      n;
    ngx_str_t                   value, script_name;
    ngx_uint_t                  i;
    ngx_connection_t           *c;
    ngx_http_wsgi_var_t        *vars;
    ngx_http_wsgi_snapshot_t   *snap;
    ngx_http_core_srv_conf_t   *cscf;
    ngx_http_wsgi_loc_conf_t   *wlcf;

    c = r->connection;
    snap = &ctx->snap;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_wsgi_module);
    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    snap->location = wlcf->index;

    if (ngx_array_init(&snap->env, r->pool, 32, sizeof(ngx_http_wsgi_env_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

#define ngx_http_wsgi_add(key, p, len)                                        \
    if (ngx_http_wsgi_env_add(snap, NGX_HTTP_WSGI_ENV_ ## key, NULL, 0,       \
                              p, len)                                         \
        != NGX_OK)                                                            \
    {                                                                         \
        return NGX_ERROR;                                                     \
    }

    ngx_http_wsgi_add(REQUEST_METHOD, r->method_name.data,
                      r->method_name.len);

    /* SCRIPT_NAME from the location, or from "wsgi_var SCRIPT_NAME" */

    script_name.data = r->uri.data;
    script_name.len = ngx_http_wsgi_script_name(r->uri.data, r->uri.len,
                                                wlcf->location.data,
                                                wlcf->location.len);

    if (wlcf->vars) {
        vars = wlcf->vars->elts;

        for (i = 0; i < wlcf->vars->nelts; i++) {
            if (ngx_http_wsgi_is_script_name(&vars[i].key)) {
                if (ngx_http_complex_value(r, &vars[i].value, &value)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                while (value.len && value.data[value.len - 1] == '/') {
                    value.len--;
                }

                script_name = value;
                script_name.len = ngx_http_wsgi_script_name(r->uri.data,
                                                            r->uri.len,
                                                            value.data,
                                                            value.len);
                if (script_name.len == 0) {
                    script_name = value;
                    n = 0;

                } else {
                    n = script_name.len;
                }

                ngx_http_wsgi_add(SCRIPT_NAME, script_name.data,
                                  script_name.len);
                ngx_http_wsgi_add(PATH_INFO, r->uri.data + n,
                                  r->uri.len - n);
                goto script_done;
            }
        }
    }

    ngx_http_wsgi_add(SCRIPT_NAME, script_name.data, script_name.len);
    ngx_http_wsgi_add(PATH_INFO, r->uri.data + script_name.len,
                      r->uri.len - script_name.len);

script_done:

    ngx_http_wsgi_add(QUERY_STRING, r->args.data, r->args.len);
    ngx_http_wsgi_add(REQUEST_URI, r->unparsed_uri.data,
                      r->unparsed_uri.len);

    if (r->headers_in.content_type) {
        ngx_http_wsgi_add(CONTENT_TYPE,
                          r->headers_in.content_type->value.data,
                          r->headers_in.content_type->value.len);
    }

    if (!ctx->streaming_input
        && ngx_http_wsgi_snapshot_body(r, snap) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (r->headers_in.chunked && !wlcf->request_buffering) {

        /* streamed: the length is not known, wsgi.input reads to the end */

    } else if (ctx->streaming_input) {
        ngx_http_wsgi_add(CONTENT_LENGTH,
                          r->headers_in.content_length->value.data,
                          r->headers_in.content_length->value.len);

    } else if (r->headers_in.content_length_n >= 0 || r->headers_in.chunked) {
        p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        n = ngx_sprintf(p, "%O", snap->body_size) - p;

        ngx_http_wsgi_add(CONTENT_LENGTH, p, n);
    }

    if (cscf->server_name.len) {
        ngx_http_wsgi_add(SERVER_NAME, cscf->server_name.data,
                          cscf->server_name.len);

    } else {
        ngx_http_wsgi_add(SERVER_NAME, r->headers_in.server.data,
                          r->headers_in.server.len);
    }

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_HTTP_WSGI_PORT_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = ngx_http_wsgi_port(p, ngx_inet_get_port(c->local_sockaddr));
    ngx_http_wsgi_add(SERVER_PORT, p, n);

    if (r->http_protocol.len) {
        ngx_http_wsgi_add(SERVER_PROTOCOL, r->http_protocol.data,
                          r->http_protocol.len);

    } else {
        ngx_http_wsgi_add(SERVER_PROTOCOL, (u_char *) "HTTP/0.9", 8);
    }

    ngx_http_wsgi_add(REMOTE_ADDR, c->addr_text.data, c->addr_text.len);

    p += n;
    n = ngx_http_wsgi_port(p, ngx_inet_get_port(c->sockaddr));
    ngx_http_wsgi_add(REMOTE_PORT, p, n);

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        ngx_http_wsgi_add(HTTPS, (u_char *) "on", 2);
        snap->https = 1;
    }
#endif

    if (ngx_http_wsgi_snapshot_headers(r, wlcf, snap) != NGX_OK) {
        return NGX_ERROR;
    }

    /* wsgi_var last: it overrides what came before */

    if (wlcf->vars) {
        vars = wlcf->vars->elts;

        for (i = 0; i < wlcf->vars->nelts; i++) {
            if (ngx_http_wsgi_is_script_name(&vars[i].key)) {
                continue;
            }

            if (ngx_http_complex_value(r, &vars[i].value, &value) != NGX_OK) {
                return NGX_ERROR;
            }

            /* "wsgi_var HTTPS on" behind a TLS-terminating proxy */

            if (vars[i].key.len == sizeof("HTTPS") - 1
                && ngx_strncmp(vars[i].key.data, "HTTPS", 5) == 0)
            {
                snap->https = (value.len == 2
                               && ngx_strncasecmp(value.data,
                                                  (u_char *) "on", 2) == 0)
                              || (value.len == 1 && value.data[0] == '1');
            }

            if (ngx_http_wsgi_env_add(snap, NGX_HTTP_WSGI_ENV_DYNAMIC,
                                      vars[i].key.data, vars[i].key.len,
                                      value.data, value.len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

#undef ngx_http_wsgi_add

    snap->multiprocess = ngx_http_wsgi_multiprocess;

    return NGX_OK;
}


/* a port in decimal; cheaper than ngx_sprintf() */

static size_t
ngx_http_wsgi_port(u_char *p, in_port_t port)
{
    u_char   buf[NGX_HTTP_WSGI_PORT_LEN];
    size_t   n;

    n = NGX_HTTP_WSGI_PORT_LEN;

    do {
        buf[--n] = (u_char) ('0' + port % 10);
        port /= 10;
    } while (port);

    ngx_memcpy(p, buf + n, NGX_HTTP_WSGI_PORT_LEN - n);

    return NGX_HTTP_WSGI_PORT_LEN - n;
}


static ngx_int_t
ngx_http_wsgi_env_add(ngx_http_wsgi_snapshot_t *snap, ngx_uint_t known,
    u_char *key, size_t key_len, u_char *value, size_t value_len)
{
    ngx_http_wsgi_env_t  *env;

    env = ngx_array_push(&snap->env);
    if (env == NULL) {
        return NGX_ERROR;
    }

    if (known) {
        env->key = ngx_http_wsgi_env_keys[known];

    } else {

        /* a common header gets its interned key */

        for (known = NGX_HTTP_WSGI_ENV_HTTP_FIRST;
             known <= NGX_HTTP_WSGI_ENV_HTTP_LAST;
             known++)
        {
            if (ngx_http_wsgi_env_keys[known].len == key_len
                && ngx_strncmp(ngx_http_wsgi_env_keys[known].data, key,
                               key_len)
                   == 0)
            {
                break;
            }
        }

        if (known > NGX_HTTP_WSGI_ENV_HTTP_LAST) {
            known = NGX_HTTP_WSGI_ENV_DYNAMIC;
        }

        env->key.data = key;
        env->key.len = key_len;
    }

    env->known = known;
    env->value.data = value;
    env->value.len = value_len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_snapshot_headers(ngx_http_request_t *r,
    ngx_http_wsgi_loc_conf_t *wlcf, ngx_http_wsgi_snapshot_t *snap)
{
    u_char           *key, *p;
    size_t            len, sep;
    ngx_uint_t        i, j, first;
    ngx_list_part_t      *part;
    ngx_table_elt_t      *h;
    ngx_http_wsgi_env_t  *kv;

    first = snap->env.nelts;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                               h[i].key.len) == 0)
        {
            continue;
        }

        if (h[i].key.len == sizeof("Content-Length") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Length",
                               h[i].key.len) == 0)
        {
            continue;
        }

        if (!wlcf->pass_authorization
            && h[i].key.len == sizeof("Authorization") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                               h[i].key.len) == 0)
        {
            continue;
        }

        key = ngx_pnalloc(r->pool, h[i].key.len + 5);
        if (key == NULL) {
            return NGX_ERROR;
        }

        len = ngx_http_wsgi_header_key(key, h[i].key.data, h[i].key.len);
        if (len == 0) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "wsgi header \"%V\" not passed", &h[i].key);
            continue;
        }

        /*
         * httpoxy: "Proxy" would become HTTP_PROXY, which CGI-minded
         * libraries take for the proxy of their outgoing requests; its
         * credentials go with wsgi_pass_authorization, as Authorization
         */

        if (len == sizeof("HTTP_PROXY") - 1
            && ngx_strncmp(key, "HTTP_PROXY", len) == 0)
        {
            continue;
        }

        if (!wlcf->pass_authorization
            && len == sizeof("HTTP_PROXY_AUTHORIZATION") - 1
            && ngx_strncmp(key, "HTTP_PROXY_AUTHORIZATION", len) == 0)
        {
            continue;
        }

        /* a repeated header joins the first one's value */

        kv = snap->env.elts;

        for (j = first; j < snap->env.nelts; j++) {
            if (kv[j].key.len == len
                && ngx_strncmp(kv[j].key.data, key, len) == 0)
            {
                break;
            }
        }

        if (j < snap->env.nelts) {
            sep = (len == sizeof("HTTP_COOKIE") - 1
                   && ngx_strncmp(key, "HTTP_COOKIE", len) == 0) ? ';' : ',';

            p = ngx_pnalloc(r->pool, kv[j].value.len + 2 + h[i].value.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            kv[j].value.len = ngx_sprintf(p, "%V%c %V", &kv[j].value, sep,
                                          &h[i].value)
                              - p;
            kv[j].value.data = p;

            continue;
        }

        if (ngx_http_wsgi_env_add(snap, NGX_HTTP_WSGI_ENV_DYNAMIC, key, len,
                                  h[i].value.data, h[i].value.len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wsgi_snapshot_body(ngx_http_request_t *r,
    ngx_http_wsgi_snapshot_t *snap)
{
    ngx_uint_t             n;
    ngx_buf_t             *b;
    ngx_chain_t           *cl;
    ngx_http_wsgi_body_t  *seg;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    n = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        n++;
    }

    snap->body = ngx_pcalloc(r->pool, n * sizeof(ngx_http_wsgi_body_t));
    if (snap->body == NULL) {
        return NGX_ERROR;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        seg = &snap->body[snap->nbody];

        if (b->in_file) {
            seg->pos = NULL;
            seg->fd = b->file->fd;
            seg->offset = b->file_pos;
            seg->size = b->file_last - b->file_pos;

        } else {
            seg->pos = b->pos;
            seg->fd = NGX_INVALID_FILE;
            seg->size = b->last - b->pos;
        }

        if (seg->size == 0) {
            continue;
        }

        snap->body_size += seg->size;
        snap->nbody++;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wsgi body: %O bytes in %ui segments",
                   snap->body_size, snap->nbody);

    return NGX_OK;
}


#endif /* !(NGX_HTTP_WSGI_FUZZ) */
