#!/bin/sh
# Installs the Debian packages the build, the tests, the example and the
# benchmarks need, only when some are missing.  Idempotent.
#
#   tools/deps.sh            build, tests and example
#   tools/deps.sh bench      also the benchmark load generator and peers

set -eu

pkgs="gcc make clang nginx nginx-dev python3 python3-dev python3-pytest
python3-django python3-flask curl libclang-rt-14-dev
python3-werkzeug python3-bottle python3-falcon python3-pyramid
python3-cherrypy3 radicale mercurial"

if [ "${1:-}" = bench ]; then
    pkgs="$pkgs wrk uwsgi-core uwsgi-plugin-python3 gunicorn apache2
libapache2-mod-wsgi-py3 util-linux"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
