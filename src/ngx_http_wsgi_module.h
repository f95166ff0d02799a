
/*
 * nginx mod_wsgi: PEP 3333 applications hosted inside nginx.
 */


#ifndef _NGX_HTTP_WSGI_MODULE_H_INCLUDED_
#define _NGX_HTTP_WSGI_MODULE_H_INCLUDED_


#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include <semaphore.h>


/*
 * Two sides meet in ngx_http_wsgi_ctx_t.  The nginx side owns the request:
 * it snapshots what the application may see, runs steps and sends their
 * output.  The Python side runs only inside a step, on whatever thread
 * runs it, holding the GIL, and never touches the nginx request.
 */


#define NGX_HTTP_WSGI_SLOW_NEXT      1000   /* us: a next() this slow streams */
#define NGX_HTTP_WSGI_SMALL          512    /* chunks this small coalesce */
#define NGX_HTTP_WSGI_COALESCE       4096   /* ... into buffers this big */
#define NGX_HTTP_WSGI_CACHED_VALUE   256    /* environ values, for reuse */
#define NGX_HTTP_WSGI_OUT_FIRST      2      /* chunks a step has room for */
#define NGX_HTTP_WSGI_SHUTDOWN_TIMEOUT  5000 /* ms for Python to end */


/* initial-exec: glibc's static TLS reserve, an offset, no call */
#define ngx_http_wsgi_tls  __thread __attribute__((tls_model("initial-exec")))


#define ngx_http_wsgi_isdigit(c)  ((c) >= '0' && (c) <= '9')
#define ngx_http_wsgi_isalnum(c)                                              \
    (ngx_http_wsgi_isdigit(c)                                                 \
     || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))


typedef struct ngx_http_wsgi_ctx_s  ngx_http_wsgi_ctx_t;


typedef struct ngx_http_wsgi_interp_s  ngx_http_wsgi_interp_t;


/* an application group: the interpreter its applications share */
typedef struct {
    ngx_str_t                    name;        /* "" for the main one */
    ngx_array_t                 *python_path; /* of ngx_str_t, or NULL */
    ngx_uint_t                   index;       /* 0: the main interpreter */
    u_char                      *file;        /* where it was first named */
    ngx_uint_t                   line;
    ngx_uint_t                   renew;       /* "interpreter" reloads it */
} ngx_http_wsgi_group_t;


#define NGX_HTTP_WSGI_RELOAD_MODULE       0
#define NGX_HTTP_WSGI_RELOAD_INTERPRETER  1
#define NGX_HTTP_WSGI_RELOAD_PROCESS      2

#define NGX_HTTP_WSGI_RELOAD_CHECK   1000   /* ms between looks at a script */

/* a group's interpreters at once: the one serving, those still ending */
#define NGX_HTTP_WSGI_GENERATIONS    4


/* a version of a script: any field changed is another version */
typedef struct {
    ngx_file_uniq_t              uniq;
    off_t                        size;
    struct timespec              mtime;
} ngx_http_wsgi_version_t;


typedef struct {
    ngx_str_t                    path;        /* absolute, null-terminated */
    ngx_str_t                    callable;    /* null-terminated */
    ngx_str_t                    module;      /* "_wsgi_<md5 of path>" */
    ngx_uint_t                   index;       /* in the interpreter's list */
    ngx_uint_t                   group;       /* its ngx_http_wsgi_group_t */
    ngx_flag_t                   fallback;    /* to the main interpreter */

    ngx_flag_t                   reloading;   /* wsgi_script_reloading */
    ngx_uint_t                   mechanism;   /* wsgi_reload_mechanism */

    /* the worker's: the group's, or the main one after a fallback */
    ngx_http_wsgi_interp_t      *interp;

    /* reloading, nginx side: the version seen last, and when it looked */
    ngx_msec_t                   looked;
    ngx_http_wsgi_version_t      seen;
    volatile ngx_uint_t          changes;     /* seen, counted */

    /* Python side, under the GIL */
    ngx_uint_t                   handled;     /* changes acted on */
    ngx_uint_t                   retire;      /* "process": 1, then 2 */
    ngx_uint_t                   waited;      /* "interpreter": logged */
    ngx_msec_t                   declined;    /* "interpreter": put off */
    ngx_http_wsgi_version_t      loaded;
    ngx_http_wsgi_version_t      failed;      /* its import failed */
} ngx_http_wsgi_app_t;


#define NGX_HTTP_WSGI_PRIORITY_NORMAL  0
#define NGX_HTTP_WSGI_PRIORITY_IDLE    1
#define NGX_HTTP_WSGI_PRIORITY_AUTO    2


typedef struct {
    ngx_array_t                  apps;        /* of ngx_http_wsgi_app_t * */
    ngx_array_t                  groups;      /* of ngx_http_wsgi_group_t */
    ngx_array_t                 *python_path; /* http's, of ngx_str_t */
    ngx_str_t                    python_home;
    ngx_str_t                    python_executable;
    ngx_int_t                    optimize;
    ngx_uint_t                   workers;     /* for wsgi.multiprocess */
    ngx_uint_t                   locations;   /* with wsgi_pass */
    ngx_thread_pool_t           *thread_pool; /* the default pool */
    ngx_uint_t                   pooled;      /* a location uses a pool */
    ngx_uint_t                   priority;    /* of the pool threads */
    ngx_shm_zone_t              *crash;
} ngx_http_wsgi_main_conf_t;


typedef struct {
    ngx_str_t                    key;
    ngx_http_complex_value_t     value;
} ngx_http_wsgi_var_t;


/* "wsgi_middleware module callable": both null-terminated */
typedef struct {
    ngx_str_t                    module;
    ngx_str_t                    callable;
} ngx_http_wsgi_middleware_t;


typedef struct {
    ngx_http_wsgi_app_t         *app;
    ngx_str_t                    script;      /* wsgi_pass's, until merged */
    ngx_str_t                    callable;
    u_char                      *file;        /* of wsgi_pass */
    ngx_uint_t                   line;
    ngx_flag_t                   subinterpreters;
    ngx_flag_t                   main_interpreter;
    ngx_str_t                    group;       /* data NULL: unset */
    ngx_array_t                 *python_path; /* of ngx_str_t */
    ngx_uint_t                   fallback;
    ngx_flag_t                   reloading;
    ngx_uint_t                   mechanism;
    ngx_uint_t                   index;       /* of the wsgi_pass location */
    ngx_str_t                    location;    /* for SCRIPT_NAME */
    ngx_array_t                 *vars;        /* of ngx_http_wsgi_var_t */
    ngx_array_t                 *middleware;  /* wsgi_middleware, in order */
    ngx_flag_t                   pass_authorization;
    ngx_thread_pool_t           *thread_pool; /* NULL: inline */
    size_t                       buffer_size;
    ngx_int_t                    max_queue;
    ngx_flag_t                   allow_ranges;
    ngx_flag_t                   cache_validation;
    ngx_flag_t                   optimize_send_headers;
    ngx_flag_t                   output_buffering;
    ngx_flag_t                   write_buffering;
    size_t                       write_buffer_size;
    ngx_path_t                  *temp_path;
    ngx_flag_t                   request_buffering;
} ngx_http_wsgi_loc_conf_t;


/* a request body segment: memory, or a range of the body's temp file */
typedef struct {
    u_char                      *pos;         /* NULL for a file segment */
    ngx_fd_t                     fd;
    off_t                        offset;
    off_t                        size;
} ngx_http_wsgi_body_t;


/* environ keys the Python side keeps interned */
typedef enum {
    NGX_HTTP_WSGI_ENV_DYNAMIC = 0,
    NGX_HTTP_WSGI_ENV_REQUEST_METHOD,
    NGX_HTTP_WSGI_ENV_SCRIPT_NAME,
    NGX_HTTP_WSGI_ENV_PATH_INFO,
    NGX_HTTP_WSGI_ENV_QUERY_STRING,
    NGX_HTTP_WSGI_ENV_REQUEST_URI,
    NGX_HTTP_WSGI_ENV_CONTENT_TYPE,
    NGX_HTTP_WSGI_ENV_CONTENT_LENGTH,
    NGX_HTTP_WSGI_ENV_SERVER_NAME,
    NGX_HTTP_WSGI_ENV_SERVER_PORT,
    NGX_HTTP_WSGI_ENV_SERVER_PROTOCOL,
    NGX_HTTP_WSGI_ENV_SERVER_SOFTWARE,
    NGX_HTTP_WSGI_ENV_REMOTE_ADDR,
    NGX_HTTP_WSGI_ENV_REMOTE_PORT,
    NGX_HTTP_WSGI_ENV_HTTPS,
    NGX_HTTP_WSGI_ENV_HTTP_HOST,
    NGX_HTTP_WSGI_ENV_HTTP_USER_AGENT,
    NGX_HTTP_WSGI_ENV_HTTP_ACCEPT,
    NGX_HTTP_WSGI_ENV_HTTP_ACCEPT_ENCODING,
    NGX_HTTP_WSGI_ENV_HTTP_ACCEPT_LANGUAGE,
    NGX_HTTP_WSGI_ENV_HTTP_CONNECTION,
    NGX_HTTP_WSGI_ENV_HTTP_COOKIE,
    NGX_HTTP_WSGI_ENV_HTTP_REFERER,
    NGX_HTTP_WSGI_ENV_HTTP_CACHE_CONTROL,
    NGX_HTTP_WSGI_ENV_HTTP_X_FORWARDED_FOR,
    NGX_HTTP_WSGI_ENV_WSGI_VERSION,
    NGX_HTTP_WSGI_ENV_WSGI_URL_SCHEME,
    NGX_HTTP_WSGI_ENV_WSGI_INPUT,
    NGX_HTTP_WSGI_ENV_WSGI_ERRORS,
    NGX_HTTP_WSGI_ENV_WSGI_MULTITHREAD,
    NGX_HTTP_WSGI_ENV_WSGI_MULTIPROCESS,
    NGX_HTTP_WSGI_ENV_WSGI_RUN_ONCE,
    NGX_HTTP_WSGI_ENV_WSGI_INPUT_TERMINATED,
    NGX_HTTP_WSGI_ENV_WSGI_FILE_WRAPPER,
    NGX_HTTP_WSGI_ENV_NGX_CLIENT_CONNECTED,
    NGX_HTTP_WSGI_ENV_KEYS
} ngx_http_wsgi_env_key_e;


#define NGX_HTTP_WSGI_ENV_HTTP_FIRST  NGX_HTTP_WSGI_ENV_HTTP_HOST
#define NGX_HTTP_WSGI_ENV_HTTP_LAST   NGX_HTTP_WSGI_ENV_HTTP_X_FORWARDED_FOR


typedef struct {
    ngx_str_t                    key;
    ngx_str_t                    value;
    ngx_http_wsgi_env_key_e      known;
} ngx_http_wsgi_env_t;


/* taken on the event loop before the first step; later env entries win */
typedef struct {
    ngx_array_t                  env;         /* of ngx_http_wsgi_env_t */
    ngx_uint_t                   location;    /* its wsgi_pass, an index */
    ngx_socket_t                 fd;          /* inline HTTP/1.x: peeked */
    ngx_http_wsgi_body_t        *body;
    ngx_uint_t                   nbody;
    off_t                        body_size;
    unsigned                     https:1;
    unsigned                     multiprocess:1;
    unsigned                     multithread:1;
} ngx_http_wsgi_snapshot_t;


/* request body data that arrived while the application runs */
typedef struct ngx_http_wsgi_in_s  ngx_http_wsgi_in_t;

struct ngx_http_wsgi_in_s {
    ngx_http_wsgi_in_t          *next;
    size_t                       size;
    size_t                       pos;
    u_char                       data[1];
};


/* a step's body chunk: bytes, or a file range whose fd it owns */
typedef struct {
    PyObject                    *obj;         /* exact bytes, owned */
    u_char                      *data;
    size_t                       size;
    ngx_fd_t                     fd;          /* NGX_INVALID_FILE: memory */
    off_t                        offset;
    unsigned                     coalesce:1;  /* ours, with room left */
    unsigned                     temp:1;      /* a temp file */
} ngx_http_wsgi_chunk_t;


/* in a list of pins: an interpreter's pins follow; a request is done */
#define NGX_HTTP_WSGI_TAG_INTERP     1
#define NGX_HTTP_WSGI_TAG_DONE       2
#define NGX_HTTP_WSGI_TAGS           3


/* objects the nginx side keeps for a later release: an ngx_alloc()ed list */
typedef struct {
    PyObject                   **elts;
    ngx_uint_t                   nelts;
    ngx_uint_t                   nalloc;
    ngx_http_wsgi_interp_t      *interp;      /* of the last objects */
} ngx_http_wsgi_objs_t;


/* a buffer on its way through nginx's filters, with the bytes it shows */
typedef struct {
    ngx_buf_t                    buf;
    PyObject                    *obj;         /* a pin, see release() */
} ngx_http_wsgi_buf_t;


/* the response headers nginx has a field for, found by start_response() */
typedef enum {
    NGX_HTTP_WSGI_HEADER_OTHER = 1,
    NGX_HTTP_WSGI_HEADER_CONTENT_LENGTH,
    NGX_HTTP_WSGI_HEADER_CONTENT_TYPE,
    NGX_HTTP_WSGI_HEADER_DATE,
    NGX_HTTP_WSGI_HEADER_SERVER,
    NGX_HTTP_WSGI_HEADER_CONTENT_ENCODING,
    NGX_HTTP_WSGI_HEADER_ETAG,
    NGX_HTTP_WSGI_HEADER_LAST_MODIFIED
} ngx_http_wsgi_header_e;


/* validated by start_response(): latin-1 bytes pinned by ctx->headers */
typedef struct {
    ngx_http_wsgi_header_e       kind;
    ngx_str_t                    name;
    ngx_str_t                    value;
} ngx_http_wsgi_header_t;


/*
 * nginx side: where the request's step is (inline: always LOOP).
 *   LOOP --thread_queue()--> THREAD --thread_complete()--> LOOP
 *                           THREAD <--> FLUSH  write() waits for the client
 *                           THREAD <--> PULL   wsgi.input waits for the body
 */
typedef enum {
    NGX_HTTP_WSGI_PHASE_LOOP = 0,
    NGX_HTTP_WSGI_PHASE_THREAD,
    NGX_HTTP_WSGI_PHASE_FLUSH,
    NGX_HTTP_WSGI_PHASE_PULL
} ngx_http_wsgi_phase_e;


/*
 * Python side: the application's body.
 *   ITERATING --end of the iterable, Content-Length--> DONE
 *   ITERATING --client gone--> ABORTED
 *   any --close()--> COMPLETE (DONE), FAILED (failed), STOPPED (the rest)
 * write() from close() goes on, is dropped or raises, by the closed state.
 * "failed" is a flag: an error may come after DONE.
 */
typedef enum {
    NGX_HTTP_WSGI_BODY_ITERATING = 0,
    NGX_HTTP_WSGI_BODY_DONE,
    NGX_HTTP_WSGI_BODY_ABORTED,
    NGX_HTTP_WSGI_BODY_COMPLETE,
    NGX_HTTP_WSGI_BODY_STOPPED,
    NGX_HTTP_WSGI_BODY_FAILED
} ngx_http_wsgi_body_e;

#define ngx_http_wsgi_done(ctx)                                               \
    ((ctx)->body == NGX_HTTP_WSGI_BODY_DONE                                   \
     || (ctx)->body == NGX_HTTP_WSGI_BODY_COMPLETE)
#define ngx_http_wsgi_closed(ctx)  ((ctx)->body >= NGX_HTTP_WSGI_BODY_COMPLETE)


/* Python side: which of the application's code a step is in */
typedef enum {
    NGX_HTTP_WSGI_INSIDE_STEP = 0,
    NGX_HTTP_WSGI_INSIDE_CALL,                /* application() */
    NGX_HTTP_WSGI_INSIDE_APP                  /* next(), close() */
} ngx_http_wsgi_inside_e;


typedef enum {
    NGX_HTTP_WSGI_STEP_CALL = 0,
    NGX_HTTP_WSGI_STEP_ITERATE,
    NGX_HTTP_WSGI_STEP_CLOSE
} ngx_http_wsgi_step_e;


struct ngx_http_wsgi_ctx_s {
    /* nginx side: touched on the event loop only */
    ngx_http_request_t          *request;
    ngx_chain_t                 *busy;
    ngx_chain_t                 *free;
    off_t                        sent;
    ngx_int_t                    final_rc;
    ngx_uint_t                   max_queue;
    ngx_thread_pool_t           *thread_pool; /* NULL: steps run inline */
    ngx_http_wsgi_step_e         step;
    ngx_http_wsgi_ctx_t         *step_next;   /* under the channel mutex */
    uint64_t                     queued;      /* us, when the step was */
    unsigned                     header_sent:1;
    unsigned                     header_only:1;
    unsigned                     optimize_send_headers:1; /* steps read it */
    unsigned                     finishing:1; /* the close step is next */
    unsigned                     phase:2;     /* ngx_http_wsgi_phase_e */

    /* set by the event loop, read by a running step */
    volatile ngx_int_t           client_gone;

    /* write() or wsgi.input waiting on a pool thread: channel mutex */
    ngx_int_t                    flush;
    ngx_uint_t                   pull;        /* wants body, not a flush */
    sem_t                       *wake;        /* posted when flush is set */
    ngx_http_wsgi_ctx_t         *flush_next;

    /* streamed wsgi.input: filled only while the Python side waits */
    ngx_http_wsgi_in_t          *in;
    ngx_http_wsgi_in_t         **in_last;
    ngx_int_t                    in_state;    /* AGAIN, OK: end, ERROR */
    unsigned                     streaming_input:1;

    /* set before the first step, read-only afterwards */
    ngx_http_wsgi_app_t         *app;
    ngx_http_wsgi_interp_t      *interp;      /* the application's */
    ngx_array_t                 *middleware;  /* the location's, or NULL */
    ngx_http_wsgi_snapshot_t     snap;
    ngx_log_t                   *log;
    size_t                       bound;       /* bytes a step may produce */
    size_t                       spool_max;   /* in memory, then a file */
    u_char                      *temp_dir;    /* null-terminated */
    unsigned                     output_buffering:1;
    unsigned                     write_buffering:1;
    unsigned                     spool_all:1; /* multipart ranges */

    /* pins the nginx side is done with, for ngx_http_wsgi_release() */
    ngx_array_t                  release;     /* of PyObject * */

    /* Python side: touched by steps only, holding the GIL */
    PyThreadState               *step_ts;     /* of the step running */
    ngx_uint_t                   py_waiters;  /* threads in thread_wait() */
    ngx_uint_t                   py_waiting;  /* one waits for the loop */
    PyObject                    *iterable;
    PyObject                    *iterator;
    PyObject                    *input;
    PyObject                    *errors;
    PyObject                    *start_response;
    PyObject                    *status;      /* str "NNN reason" */
    ngx_str_t                    status_line; /* its latin-1 bytes */
    PyObject                    *headers;     /* bytes, holds header */
    ngx_http_wsgi_header_t      *header;      /* the application's */
    ngx_uint_t                   nheaders;
    ngx_uint_t                   status_code;
    off_t                        length;      /* app's Content-Length or -1 */
    off_t                        produced;
    off_t                        add_length;  /* ours, or -1 */

    /* the spool: body held back, in memory up to spool_max, then a file */
    PyObject                    *spool;       /* bytes of spool_max */
    size_t                       spool_len;
    ngx_fd_t                     spool_fd;
    off_t                        spool_file_len;

    /* a step's output: read by the nginx side after the step */
    ngx_http_wsgi_chunk_t       *out;         /* out_first or malloc()ed */
    ngx_uint_t                   nout;
    ngx_uint_t                   nalloc;
    size_t                       out_size;
    ngx_http_wsgi_chunk_t        out_first[NGX_HTTP_WSGI_OUT_FIRST];

    unsigned                     started:1;   /* start_response() called */
    unsigned                     committed:1; /* headers are final */
    unsigned                     failed:1;    /* error logged */
    unsigned                     streaming:1; /* slow producer */
    unsigned                     first_out:1; /* headers went with a batch */
    unsigned                     spool_failed:1; /* no temp file: memory */
    unsigned                     body:3;      /* ngx_http_wsgi_body_e */
    unsigned                     inside:2;    /* ngx_http_wsgi_inside_e */
    unsigned                     retire:1;    /* the worker's last request */
    unsigned                     counted:1;   /* in ctx->interp->requests */
};


/* an interpreter of the worker, with its applications */
struct ngx_http_wsgi_interp_s {
    PyInterpreterState          *is;
    PyObject                    *module;      /* "ngx" */
    void                        *state;       /* its state */
    PyObject                    *apps;        /* list, index -> app or None */
    PyObject                    *name;        /* str, the group's */
    ngx_http_wsgi_group_t       *group;
    ngx_uint_t                   index;       /* of its thread states */
    ngx_http_wsgi_interp_t      *next;

    /*
     * "interpreter" reloading: a group's first one has the one its
     * requests start in (the event loop's), and one made to replace it
     */
    ngx_http_wsgi_interp_t      *live;
    ngx_http_wsgi_interp_t *volatile  ready;

    ngx_atomic_t                 requests;    /* in flight, if it may end */
    ngx_atomic_t                 retired;
    ngx_msec_t                   tried;       /* to end it, and it ran on */
    unsigned                     spare:1;     /* a slot for a new one */
    unsigned                     ending:1;
    unsigned                     running:1;   /* threads kept it from ending */
};


/*
 * The environ a location's requests start from: constant values, the last
 * request's values of keys that seldom change (present: a bit per key),
 * keys of earlier requests (held), and the last request's objects, reused
 * when nobody else holds them.
 */
typedef struct {
    PyObject                    *environ;
    PyObject                    *values[NGX_HTTP_WSGI_ENV_KEYS]; /* its */
    uint64_t                     present;
    uint64_t                     held;        /* its other keys */

    PyObject                    *input;
    PyObject                    *errors;
    PyObject                    *connected;
} ngx_http_wsgi_template_t;


/* a str found valid before, by address: applications reuse constants */
typedef struct {
    PyObject                    *str;
    ngx_uint_t                   kind;
} ngx_http_wsgi_checked_t;

#define NGX_HTTP_WSGI_CHECKED        64
#define NGX_HTTP_WSGI_CHECKED_VALUE  0xff


/* per-interpreter state of the "ngx" Python module */
typedef struct {
    PyObject                    *input_type;
    PyObject                    *errors_type;
    PyObject                    *start_response_type;
    PyObject                    *write_type;
    PyObject                    *client_connected_type;
    PyObject                    *file_wrapper_type;
    PyObject                    *log_stream_type;
    PyObject                    *stdio[2];    /* under stdout, stderr */
    PyObject                    *version;     /* (1, 0) */
    PyObject                    *keys[NGX_HTTP_WSGI_ENV_KEYS];
    PyObject                    *str_http;
    PyObject                    *str_https;
    ngx_http_wsgi_template_t    *templates;   /* per location */
    ngx_uint_t                   ntemplates;
    PyObject                   **middleware;  /* per location: (app, stack) */
    ngx_uint_t                   nmiddleware;
    PyObject                    *values[NGX_HTTP_WSGI_ENV_KEYS]; /* last */
    ngx_http_wsgi_checked_t      checked[NGX_HTTP_WSGI_CHECKED];
    PyObject                    *ext_error;   /* an extension's, importing */
    PyObject                    *ext_name;
} ngx_http_wsgi_state_t;


#define NGX_HTTP_WSGI_RUNNERS     16        /* added at once, at most */


typedef struct ngx_http_wsgi_release_s  ngx_http_wsgi_release_t;

typedef struct ngx_http_wsgi_sched_s  ngx_http_wsgi_sched_t;

typedef struct ngx_http_wsgi_runner_s  ngx_http_wsgi_runner_t;

/* a thread task that runs queued steps until there are none */

struct ngx_http_wsgi_runner_s {
    ngx_thread_task_t        task;
    ngx_http_wsgi_sched_t   *sched;
    ngx_http_wsgi_runner_t  *next;        /* free list */
    ngx_queue_t              queue;       /* in sched->active */

    /* under the channel mutex */
    pid_t                    tid;         /* its thread, once it runs */
    ngx_uint_t               busy;        /* running a step */
    uint64_t                 started;     /* us, its step; 0 between steps */
    ngx_uint_t               yielding;    /* its thread under SCHED_IDLE */
};


/* the steps waiting for a pool; counters under the channel mutex */

struct ngx_http_wsgi_sched_s {
    ngx_thread_pool_t       *pool;
    ngx_http_wsgi_ctx_t     *head;
    ngx_http_wsgi_ctx_t    **tail;
    ngx_uint_t               queued;
    ngx_http_wsgi_release_t *releases;
    ngx_uint_t               runners;     /* posted, not yet returned */
    ngx_uint_t               busy;        /* running a step */
    ngx_uint_t               idle;        /* lingering for the next one */
    ngx_uint_t               retire;      /* lingering runners: return */
    ngx_uint_t               posted;      /* wakeups not yet taken */
    ngx_uint_t               priority;    /* of the runners' threads */
    uint64_t                 average;     /* us, the steps' recent length */
    ngx_uint_t               yielding;    /* runners go under SCHED_IDLE */
    sem_t                    wake;        /* wakes a lingering runner */
    ngx_event_t              timer;       /* looks for a stalled queue */
    ngx_event_t              kick;        /* after this event loop round */

    /* event loop only */
    ngx_queue_t              active;      /* runners posted, not back */
    ngx_msec_t               looked;      /* at long steps */
    ngx_event_t              linger;      /* retires idle runners */
    ngx_uint_t               kicked;      /* since the last linger timer */
    ngx_http_wsgi_runner_t  *free;
    ngx_uint_t               away;        /* steps not back yet */
    ngx_event_t              alive;       /* keeps an exiting worker */
    ngx_http_wsgi_objs_t     objs;        /* to release, this round */
    ngx_http_wsgi_sched_t   *next;
};


/* how a process died, as far as it could note it; 0: not known */
#define NGX_HTTP_WSGI_CRASH_SIGNAL     0x100
#define NGX_HTTP_WSGI_CRASH_EXIT       0x200
#define NGX_HTTP_WSGI_CRASH_VALUE      0xff

#define NGX_HTTP_WSGI_CRASH_PROBE      60000  /* ms an import may take */


/* how a probe's import ended: written by its processes, done last */
typedef struct {
    volatile ngx_pid_t           pid;         /* the one that imports */
    volatile ngx_uint_t          how;         /* seen by the probe */
    volatile ngx_uint_t          noted;       /* ... by the one that died */
    volatile ngx_uint_t          returned;
    volatile ngx_uint_t          done;
} ngx_http_wsgi_probe_t;


extern ngx_module_t  ngx_http_wsgi_module;
/* the main interpreter, then the groups'; NULL until Python runs */
extern ngx_http_wsgi_interp_t  *ngx_http_wsgi_interp;
extern ngx_uint_t  ngx_http_wsgi_ninterps;
extern ngx_http_wsgi_tls ngx_http_wsgi_interp_t  *ngx_http_wsgi_interp_last;
extern ngx_uint_t  ngx_http_wsgi_multiprocess;
extern ngx_uint_t  ngx_http_wsgi_forked;


#define ngx_http_wsgi_state()                                                 \
    ((ngx_http_wsgi_state_t *) ngx_http_wsgi_interp_current()->state)


/* the interpreter the calling thread runs Python in */

static ngx_inline ngx_http_wsgi_interp_t *
ngx_http_wsgi_interp_current(void)
{
    PyInterpreterState      *is;
    ngx_http_wsgi_interp_t  *interp;

    is = PyInterpreterState_Get();

    /* a thread keeps to one interpreter for a while: no walk then */

    interp = ngx_http_wsgi_interp_last;

    if (interp != NULL && interp->is == is) {
        return interp;
    }

    for (interp = ngx_http_wsgi_interp; interp->is != is; interp = interp->next)
    {
        /* void */
    }

    ngx_http_wsgi_interp_last = interp;

    return interp;
}



ngx_int_t ngx_http_wsgi_handler(ngx_http_request_t *r);
void ngx_http_wsgi_step_complete(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_flush(ngx_http_wsgi_ctx_t *ctx);


ngx_int_t ngx_http_wsgi_body_read(ngx_http_wsgi_ctx_t *ctx, ngx_uint_t read);
ngx_int_t ngx_http_wsgi_body_pull(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_body_free(ngx_http_wsgi_ctx_t *ctx);


ngx_int_t ngx_http_wsgi_send_body(ngx_http_wsgi_ctx_t *ctx, ngx_uint_t last);
void ngx_http_wsgi_update_busy(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_discard_output(ngx_http_wsgi_ctx_t *ctx);


void ngx_http_wsgi_accept_after(void);


/* the inline round: the GIL held, releases deferred to its end */
void ngx_http_wsgi_hold_gil(void);
ngx_int_t ngx_http_wsgi_defer(ngx_http_wsgi_interp_t *interp, PyObject **objs,
    ngx_uint_t n);
void ngx_http_wsgi_release_deferred(void);
ngx_int_t ngx_http_wsgi_objs_add(ngx_http_wsgi_objs_t *a, PyObject **objs,
    ngx_uint_t n, ngx_log_t *log);


ngx_int_t ngx_http_wsgi_thread_init(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
void ngx_http_wsgi_thread_done(ngx_cycle_t *cycle);
ngx_int_t ngx_http_wsgi_thread_queue(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e step, ngx_uint_t max_queue);
void ngx_http_wsgi_thread_release(ngx_thread_pool_t *tp,
    ngx_http_wsgi_interp_t *interp, PyObject **objs,
    ngx_uint_t n, ngx_log_t *log);
void ngx_http_wsgi_thread_complete(ngx_http_wsgi_ctx_t *ctx);
ngx_int_t ngx_http_wsgi_input_pull(ngx_http_wsgi_ctx_t *ctx);

extern ngx_http_wsgi_sched_t  *ngx_http_wsgi_scheds;


ngx_int_t ngx_http_wsgi_priority_init_module(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
void ngx_http_wsgi_priority_init(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
void ngx_http_wsgi_priority_idle(ngx_log_t *log);
void ngx_http_wsgi_priority_runner(ngx_http_wsgi_runner_t *runner,
    ngx_uint_t yielding);
void ngx_http_wsgi_priority_yield(ngx_http_wsgi_sched_t *sched);
ngx_uint_t ngx_http_wsgi_priority_computing(uint64_t now);
void ngx_http_wsgi_priority_restart(void);

/* "wsgi_thread_priority auto" works: the runners may yield and come back */
extern ngx_uint_t  ngx_http_wsgi_yields;


ngx_int_t ngx_http_wsgi_channel_open(ngx_cycle_t *cycle);
void ngx_http_wsgi_channel_close(void);
void ngx_http_wsgi_channel_look_later(void);
void ngx_http_wsgi_channel_look_now(void);
void ngx_http_wsgi_channel_notify(ngx_log_t *log);
ngx_int_t ngx_http_wsgi_thread_wait(ngx_http_wsgi_ctx_t *ctx,
    ngx_uint_t pull);
void ngx_http_wsgi_thread_turn(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_thread_signal(ngx_http_wsgi_ctx_t *ctx, ngx_int_t rc);

/* the mutex also guards the pools' queues */
extern pthread_mutex_t  ngx_http_wsgi_channel_mutex;
extern ngx_http_wsgi_ctx_t  *ngx_http_wsgi_channel_done;
extern ngx_uint_t  ngx_http_wsgi_channel_armed;


/* execution steps: the only way the nginx side runs Python */
void ngx_http_wsgi_step_run(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e step);
void ngx_http_wsgi_step_exec(ngx_http_wsgi_ctx_t *ctx,
    ngx_http_wsgi_step_e step);
void ngx_http_wsgi_step_cleanup(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_forked_exit(ngx_log_t *log);
void ngx_http_wsgi_release(PyObject **objs, ngx_uint_t n);
void ngx_http_wsgi_step_release_objs(ngx_http_wsgi_interp_t *interp,
    PyObject **objs, ngx_uint_t n);
ngx_int_t ngx_http_wsgi_objs_interp(ngx_http_wsgi_objs_t *a,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log);
ngx_http_wsgi_chunk_t *ngx_http_wsgi_step_chunk_add(ngx_http_wsgi_ctx_t *ctx,
    PyObject *obj, u_char *data, size_t size);
void ngx_http_wsgi_spool_add(ngx_http_wsgi_ctx_t *ctx, u_char *data,
    size_t size);
void ngx_http_wsgi_spool_flush(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_spool_discard(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_step_output_file(ngx_http_wsgi_ctx_t *ctx, ngx_fd_t fd,
    off_t offset, off_t size, ngx_uint_t temp);
ngx_int_t ngx_http_wsgi_step_chunk(ngx_http_wsgi_ctx_t *ctx, PyObject *item,
    const char *what);


ngx_int_t ngx_http_wsgi_interp_init(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
void ngx_http_wsgi_interp_done(ngx_cycle_t *cycle);
void ngx_http_wsgi_watchdog_start(ngx_cycle_t *cycle);
PyObject *ngx_http_wsgi_module_init(void);
void ngx_http_wsgi_module_release(PyObject *m);
void ngx_http_wsgi_python_enter(ngx_http_wsgi_interp_t *interp);
void ngx_http_wsgi_python_leave(void);
void ngx_http_wsgi_python_switch(ngx_http_wsgi_interp_t *interp);
ngx_int_t ngx_http_wsgi_interp_new(ngx_http_wsgi_interp_t *interp,
    ngx_log_t *log);
ngx_int_t ngx_http_wsgi_interp_end(ngx_http_wsgi_interp_t *interp,
    ngx_uint_t join, ngx_log_t *log);


/* the "interpreter" reload mechanism */
ngx_http_wsgi_interp_t *ngx_http_wsgi_interp_take(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_interp_drop(ngx_http_wsgi_interp_t *interp);
ngx_uint_t ngx_http_wsgi_renew_busy(ngx_http_wsgi_app_t *app,
    ngx_log_t *log);
ngx_int_t ngx_http_wsgi_renew(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log);
void ngx_http_wsgi_interp_reap(void);

/* an interpreter replaced has no requests left: the next to leave ends it */
extern volatile ngx_uint_t  ngx_http_wsgi_reaping;

#define NGX_HTTP_WSGI_REAP_NOW    1
#define NGX_HTTP_WSGI_REAP_LATER  2         /* threads ran on in one */


PyObject *ngx_http_wsgi_app_get(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_interp_t *interp, ngx_log_t *log);
PyObject *ngx_http_wsgi_app_load(ngx_http_wsgi_app_t *app,
    ngx_uint_t *changed);
PyObject *ngx_http_wsgi_app_callable(ngx_http_wsgi_app_t *app,
    PyObject *module, ngx_log_t *log);
void ngx_http_wsgi_app_loaded(ngx_http_wsgi_app_t *app, ngx_uint_t level,
    const char *what, ngx_log_t *log);
PyObject *ngx_http_wsgi_dotted_attr(PyObject *obj, u_char *name);
PyObject *ngx_http_wsgi_extension_watch(void);
void ngx_http_wsgi_extension_unwatch(PyObject *watch);
void ngx_http_wsgi_extension_forget(void);
PyObject *ngx_http_wsgi_extension_failed(PyObject *exc);
void ngx_http_wsgi_app_check(ngx_http_wsgi_app_t *app, ngx_log_t *log);
char *ngx_http_wsgi_group_conf(ngx_conf_t *cf, ngx_http_wsgi_main_conf_t *wmcf,
    ngx_http_wsgi_loc_conf_t *prev, ngx_http_wsgi_loc_conf_t *conf);
ngx_int_t ngx_http_wsgi_group_main(ngx_conf_t *cf,
    ngx_http_wsgi_main_conf_t *wmcf);
ngx_int_t ngx_http_wsgi_dotted_name(ngx_str_t *name);
char *ngx_http_wsgi_python_path(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_wsgi_python_home(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_wsgi_python_executable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_wsgi_application_group(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_wsgi_middleware(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
PyObject *ngx_http_wsgi_middleware_get(ngx_http_wsgi_ctx_t *ctx,
    PyObject *app);


ngx_int_t ngx_http_wsgi_crash_conf(ngx_conf_t *cf,
    ngx_http_wsgi_main_conf_t *wmcf);
void ngx_http_wsgi_crash_init_process(ngx_cycle_t *cycle,
    ngx_http_wsgi_main_conf_t *wmcf);
ngx_int_t ngx_http_wsgi_crash_python(void);
ngx_uint_t ngx_http_wsgi_crash_contained(ngx_http_wsgi_app_t *app);
ngx_int_t ngx_http_wsgi_crash_check(ngx_http_request_t *r,
    ngx_http_wsgi_app_t *app);
void ngx_http_wsgi_crash_import(ngx_http_wsgi_app_t *app);
void ngx_http_wsgi_crash_imported(ngx_http_wsgi_app_t *app,
    ngx_uint_t loaded, ngx_log_t *log);
void ngx_http_wsgi_crash_step(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_crash_step_done(void);
void ngx_http_wsgi_crash_forget(volatile ngx_uint_t *noted);
ngx_pid_t ngx_http_wsgi_probe_fork(ngx_http_wsgi_app_t *app,
    ngx_http_wsgi_probe_t *p, ngx_log_t *log);


ngx_int_t ngx_http_wsgi_snapshot(ngx_http_request_t *r,
    ngx_http_wsgi_ctx_t *ctx);
size_t ngx_http_wsgi_header_key(u_char *dst, u_char *name, size_t len);
ngx_str_t *ngx_http_wsgi_env_key(ngx_uint_t known);
size_t ngx_http_wsgi_script_name(u_char *uri, size_t len, u_char *mount,
    size_t mount_len);
PyObject *ngx_http_wsgi_environ(ngx_http_wsgi_ctx_t *ctx);


/* response status and headers: checked (Python side), sent (nginx side) */
ngx_int_t ngx_http_wsgi_status_parse(ngx_http_wsgi_ctx_t *ctx,
    PyObject *status);
PyObject *ngx_http_wsgi_headers_parse(PyObject *headers,
    ngx_http_wsgi_header_t **list, ngx_uint_t *nheaders, off_t *length);
ngx_int_t ngx_http_wsgi_send_header(ngx_http_wsgi_ctx_t *ctx);


PyObject *ngx_http_wsgi_start_response_new(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_start_response_expire(PyObject *sr);
void ngx_http_wsgi_start_response_rebind(PyObject *connected, PyObject *sr);
PyObject *ngx_http_wsgi_start_response_connected(PyObject *sr);


PyObject *ngx_http_wsgi_input_new(ngx_http_wsgi_ctx_t *ctx);
void ngx_http_wsgi_input_expire(PyObject *input);
void ngx_http_wsgi_input_rebind(PyObject *input, ngx_http_wsgi_ctx_t *ctx);


PyObject *ngx_http_wsgi_errors_new(ngx_log_t *log, ngx_uint_t level);
void ngx_http_wsgi_errors_expire(PyObject *errors);
void ngx_http_wsgi_errors_rebind(PyObject *errors, ngx_log_t *log);
void ngx_http_wsgi_log_exception(ngx_log_t *log, const char *fmt, ...);
PyObject *ngx_http_wsgi_log_stream_new(const char *name, ngx_uint_t level);
void ngx_http_wsgi_log_stream_done(ngx_log_t *log);

/* the log of the request whose step the calling thread runs, or NULL */
extern ngx_http_wsgi_tls ngx_log_t  *ngx_http_wsgi_step_log;


ngx_int_t ngx_http_wsgi_file_wrapper_file(PyObject *fw, ngx_fd_t *fd,
    off_t *offset, off_t *size);


extern PyType_Spec  ngx_http_wsgi_input_spec;
extern PyType_Spec  ngx_http_wsgi_errors_spec;
extern PyType_Spec  ngx_http_wsgi_start_response_spec;
extern PyType_Spec  ngx_http_wsgi_write_spec;
extern PyType_Spec  ngx_http_wsgi_client_connected_spec;
extern PyType_Spec  ngx_http_wsgi_file_wrapper_spec;
extern PyType_Spec  ngx_http_wsgi_log_stream_spec;


/* a process the application forked must not go on as a second worker */

static ngx_inline void
ngx_http_wsgi_forked_check(ngx_log_t *log)
{
    if (ngx_http_wsgi_forked) {
        ngx_http_wsgi_forked_exit(log);
    }
}


static ngx_inline uint64_t
ngx_http_wsgi_thread_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


#include "ngx_http_wsgi_compat.h"


#endif /* _NGX_HTTP_WSGI_MODULE_H_INCLUDED_ */
