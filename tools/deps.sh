#!/bin/sh
# Installs the Debian packages the build, the tests, the example and the
# benchmarks need, only when some are missing.  Idempotent.
#
#   tools/deps.sh            build, tests and example
#   tools/deps.sh bench      also the benchmark load generator and peers

set -eu

pkgs="gcc make clang nginx nginx-dev python3 python3-dev python3-pytest
python3-pytest-xdist python3-pyflakes python3-django python3-flask curl
libclang-rt-14-dev
python3-werkzeug python3-bottle python3-falcon python3-pyramid
python3-cherrypy3 radicale mercurial python3-venv"

if [ "${1:-}" = bench ]; then
    pkgs="$pkgs wrk uwsgi-core uwsgi-plugin-python3 gunicorn apache2
libapache2-mod-wsgi-py3 util-linux"
fi

# one dpkg-query for all: the packages installed, then those not among them
# shellcheck disable=SC2086
installed=" "$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null \
               | awk '/ install ok installed$/ { printf "%s ", $1 }')

missing=""
for p in $pkgs; do
    case $installed in
        *" $p "*) ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
