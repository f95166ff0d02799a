#!/bin/bash
# Serves one WSGI application with Debian's nginx and the module just built,
# in the foreground, until Ctrl-C.  Everything nginx writes (config, pid,
# temp files) lives in a private prefix, build/run/; nothing under
# /etc/nginx or /var/lib/nginx is read or changed.
#
#   tools/run.sh MODULE_SO APP [PORT]     (make run [APP=...] [PORT=...])
#
# APP is a .wsgi/.py script exposing `application`; a relative APP is taken
# relative to the caller's working directory (for `make run` that is the
# repository root).  Its directory is put on wsgi_python_path, so the
# script can import modules lying next to it.
#
# Environment:
#   WORKERS=N        worker_processes (default 1)
#   RUN_USER=USER    user the workers run as when started as root
#   MOUNT=/PREFIX/   the location the application is mounted at (default /)
#   LOCATION='...'   more directives for that location, such as
#                    'wsgi_pass_authorization on; wsgi_var NAME value;'
#   RUN_PREFIX=DIR   nginx's prefix (default build/run)
#
# Started as root, nginx drops its workers to an unprivileged user, and the
# application runs in the workers.  We keep that (nobody, nginx's compiled
# in default, named explicitly) rather than running someone's application
# as root, and check up front that this user can read the script, so a
# permission problem is reported here instead of as a 500 later.  RUN_USER
# picks another user, e.g. RUN_USER=root for an app under /root.

set -eu

usage() {
    echo "usage: $0 MODULE_SO APP [PORT]" >&2
    exit 2
}

[ $# -ge 2 ] && [ $# -le 3 ] || usage

module=$1
app=$2
port=${3:-8080}
workers=${WORKERS:-1}
mount=${MOUNT:-/}
location=${LOCATION:-}
nginx=/usr/sbin/nginx

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${RUN_PREFIX:-$root/build/run}

die() {
    echo "$0: $*" >&2
    exit 1
}

case $port in
    ''|*[!0-9]*) die "invalid port \"$port\"" ;;
esac

case $mount in
    /*) ;;
    *) die "MOUNT must start with /: \"$mount\"" ;;
esac

[ -x "$nginx" ] || die "$nginx not found (tools/deps.sh installs it)"
[ -f "$module" ] || die "module \"$module\" not found (run make first)"
[ -e "$app" ] || die "application \"$app\" not found"
[ -f "$app" ] || die "application \"$app\" is not a file"

module=$(readlink -f -- "$module")
app=$(readlink -f -- "$app")
appdir=$(dirname -- "$app")

# A value for nginx.conf: double-quoted, so spaces and ';' are safe.
ngx_quote() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

user_line=""
if [ "$(id -u)" = 0 ]; then
    run_user=${RUN_USER:-nobody}
    id -u -- "$run_user" >/dev/null 2>&1 || die "no such user \"$run_user\""
    run_group=$(id -gn -- "$run_user")
    user_line="user $run_user $run_group;"

    if [ "$run_user" != root ] \
       && ! setpriv --reuid="$run_user" --regid="$run_group" --clear-groups \
                test -r "$app"
    then
        die "$app is not readable by user \"$run_user\", which the nginx" \
            "workers run as; make it (and its directories) readable, or" \
            "choose the user, e.g. RUN_USER=root make run APP=..."
    fi
fi

mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/temp" "$prefix/modules"

# Serve a copy of the module: `make` overwrites build/*.so in place, and
# a running nginx whose mapped module changes under it crashes.  The new
# copy is renamed into place, so it never clobbers one in use either.
cp -- "$module" "$prefix/modules/.ngx_http_wsgi_module.so.$$"
mv -f -- "$prefix/modules/.ngx_http_wsgi_module.so.$$" \
         "$prefix/modules/ngx_http_wsgi_module.so"
module=$prefix/modules/ngx_http_wsgi_module.so

cat > "$prefix/conf/nginx.conf" <<EOF
# Written by tools/run.sh on every run; edits are lost.

load_module $(ngx_quote "$module");

$user_line
worker_processes $workers;
error_log stderr info;
pid logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    access_log /dev/stdout;

    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    client_max_body_size 100m;

    wsgi_python_path $(ngx_quote "$appdir");

    server {
        listen 127.0.0.1:$port;

        location $(ngx_quote "$mount") {
            wsgi_pass $(ngx_quote "$app");
            $location
        }
    }
}
EOF

echo "serving $app"
echo "at http://127.0.0.1:$port$mount (prefix $prefix; Ctrl-C stops)"

# -e: the error log before nginx.conf is read (Debian's default is stderr
# too, but say so); daemon off keeps nginx in the foreground, where
# Ctrl-C (SIGINT) makes it shut down.
exec "$nginx" -p "$prefix/" -e stderr -c conf/nginx.conf -g 'daemon off;'
