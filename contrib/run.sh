#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the demo gateway or the test suite.
#   bash contrib/run.sh demo    # the demo gateway on http://127.0.0.1:8000
#   bash contrib/run.sh test    # the whole test suite (pytest arguments may follow)
#   bash contrib/run.sh jwt-demo  # the JWT demo: a throwaway IdP on :9000, the gateway on :8000
#   bash contrib/run.sh docs    # the documentation site on http://127.0.0.1:8001 (build: docs build)
# `test` first builds the documentation with `mkdocs build --strict`: a broken link, a
# missing page or a stale generated reference fails it. (Never add --quiet: it hides the
# warnings from --strict, which then passes a broken site; seen with MkDocs 1.6.)
# Creates .venv (Python >= 3.11) with the package and its test and docs extras, and installs
# memcached from Debian's packages when it is missing (the tests start their own).
set -euo pipefail
cd "$(dirname "$0")/.."

command_name=${1:-}
shift || true
case "$command_name" in
  demo|jwt-demo|test|docs|setup) ;;
  *) echo "usage: bash contrib/run.sh demo|jwt-demo|test|docs|setup [pytest args...]" >&2; exit 64 ;;
esac

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "wsgi-gateway needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.wsgi-gateway-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,fast-cel,docs]'
  echo "$want" > "$stamp"
fi

if [ "$command_name" = test ] && ! command -v memcached >/dev/null 2>&1 && [ ! -x /usr/bin/memcached ]; then
  echo "installing memcached from Debian's packages" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq memcached >/dev/null
fi

case "$command_name" in
  demo) exec .venv/bin/wsgi-gateway serve -c conf/demo.yaml "$@" ;;
  jwt-demo)
    .venv/bin/python -m contrib.demo.idp --port 9000 &
    idp_pid=$!
    trap 'kill $idp_pid 2>/dev/null' EXIT
    sleep 1
    .venv/bin/wsgi-gateway serve -c conf/jwt-demo.yaml "$@" ;;
  test)
    .venv/bin/python -m mkdocs build --strict
    exec .venv/bin/python -m pytest "$@" ;;
  docs)
    if [ "${1:-}" = build ]; then exec .venv/bin/python -m mkdocs build --strict; fi
    exec .venv/bin/python -m mkdocs serve --strict -a 127.0.0.1:8001 "$@" ;;
  setup) echo "ready: .venv/bin/wsgi-gateway --help" ;;
esac
