#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the demo gateway or the test suite.
#   bash contrib/run.sh demo    # the demo gateway on http://127.0.0.1:8000
#   bash contrib/run.sh test    # the whole test suite (pytest arguments may follow)
#   bash contrib/run.sh jwt-demo  # the JWT demo: a throwaway IdP on :9000, the gateway on :8000
#   bash contrib/run.sh browser-demo  # browser login: memcached on :11311, a throwaway IdP
#                                     # with a login form on :9001, the gateway on :8000
#   bash contrib/run.sh docs    # the documentation site on http://127.0.0.1:8001 (build: docs build)
# `test` first builds the documentation with `mkdocs build --strict`: a broken link, a
# missing page or a stale generated reference fails it. (Never add --quiet: it hides the
# warnings from --strict, which then passes a broken site; seen with MkDocs 1.6.)
# Creates .venv (Python >= 3.11) with the package and its test and docs extras, and installs
# memcached from Debian's packages when it is missing (the tests start their own); for
# `test` also chromium (the browser-login test drives it with Playwright), promtool, and npm's
# oidc-provider into ~/.cache/wsgi-gateway (the OpenID Certified provider the tests run).
set -euo pipefail
cd "$(dirname "$0")/.."

command_name=${1:-}
shift || true
case "$command_name" in
  demo|jwt-demo|browser-demo|test|docs|setup) ;;
  *) echo "usage: bash contrib/run.sh demo|jwt-demo|browser-demo|test|docs|setup [pytest args...]" >&2; exit 64 ;;
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

# Debian packages the command needs, installed only when missing, in one apt run:
# memcached (the tests start their own), and for `test` chromium (the browser-login test
# drives it with Playwright; never a browser downloaded by Playwright) and promtool (the
# metrics test checks the exposition with it; the prometheus package brings a server too,
# which is never started). A package that cannot be installed makes its tests skip and say so.
missing=()
if [ "$command_name" = test ] || [ "$command_name" = browser-demo ]; then
  command -v memcached >/dev/null 2>&1 || [ -x /usr/bin/memcached ] || missing+=(memcached)
fi
if [ "$command_name" = test ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
need_promtool=
[ "$command_name" = test ] && ! command -v promtool >/dev/null 2>&1 && need_promtool=1
if [ ${#missing[@]} -gt 0 ] || [ -n "$need_promtool" ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing ${missing[*]} ${need_promtool:+prometheus }from Debian's packages" >&2
  $sudo_cmd apt-get update -qq || true
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null ||
      echo "could not install ${missing[*]}: the tests that need them will fail or skip and say why" >&2
  fi
  if [ -n "$need_promtool" ]; then
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
      echo "could not install prometheus: the promtool test will skip and say why" >&2
  fi
fi
if [ "$command_name" = test ]; then
  # the OpenID Certified provider: npm's oidc-provider under Node, cached
  if command -v node >/dev/null 2>&1; then
    .venv/bin/python -c 'from tests.support.node_idp import install; r = install(); print(r or "oidc-provider ready")' >&2 || true
  else
    echo "Node.js is missing: the oidc-provider tests will be skipped (apt-get install nodejs npm)" >&2
  fi
fi

case "$command_name" in
  demo) exec .venv/bin/wsgi-gateway serve -c conf/demo.yaml "$@" ;;
  jwt-demo)
    .venv/bin/python -m contrib.demo.idp --port 9000 &
    idp_pid=$!
    trap 'kill $idp_pid 2>/dev/null' EXIT
    sleep 1
    .venv/bin/wsgi-gateway serve -c conf/jwt-demo.yaml "$@" ;;
  browser-demo)
    export WSGI_GATEWAY_SECRET_KEY=${WSGI_GATEWAY_SECRET_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')}
    memcached_bin=$(command -v memcached || echo /usr/bin/memcached)
    "$memcached_bin" -l 127.0.0.1 -p 11311 -m 64 -U 0 -u "$(id -un)" &
    memcached_pid=$!
    .venv/bin/python -m contrib.demo.browser_idp --port 9001 --gateway http://127.0.0.1:8000 &
    idp_pid=$!
    trap 'kill $idp_pid $memcached_pid 2>/dev/null' EXIT
    sleep 1
    echo "open http://127.0.0.1:8000/dashboard and sign in as alice / alice-password" >&2
    .venv/bin/wsgi-gateway serve -c conf/browser-demo.yaml "$@" ;;
  test)
    .venv/bin/python -m mkdocs build --strict
    exec .venv/bin/python -m pytest "$@" ;;
  docs)
    if [ "${1:-}" = build ]; then exec .venv/bin/python -m mkdocs build --strict; fi
    exec .venv/bin/python -m mkdocs serve --strict -a 127.0.0.1:8001 "$@" ;;
  setup) echo "ready: .venv/bin/wsgi-gateway --help" ;;
esac
