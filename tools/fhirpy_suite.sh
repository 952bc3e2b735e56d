#!/usr/bin/env bash
# Runs fhir-py's own test suite (beda-software/fhir-py, tests/, assertions unchanged) against a fhirserver.
#
#   tools/fhirpy_suite.sh /path/to/a/checkout/of/fhir-py [FHIR base URL]
#
# fhir-py's tests are not in its PyPI package, so a checkout is needed (git clone
# https://github.com/beda-software/fhir-py). Without a base URL, a fresh server is started here (authentication
# off, its own data folder and port) and stopped afterwards. The tests' own configuration is used: FHIR_SERVER_URL
# and FHIR_SERVER_AUTHORIZATION (fhir-py sends Basic root:secret by default; with authentication off it is ignored).
# The test tools are pinned to fhir-py's own lock file (Pipfile.lock): newer pytest-asyncio runs its fixtures
# differently and the tests then leak resources into each other.
# Prints pytest's summary; the README's "fhir-py's own tests" paragraph records the last run and why tests fail.
set -euo pipefail
checkout=$(cd "${1:?usage: tools/fhirpy_suite.sh /path/to/fhir-py [FHIR base URL]}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$checkout" "pytest==8.4.2" "pytest-asyncio==0.15.1" "responses==0.13.3" pydantic 2>&1 | grep -v "^WARNING: Location" || true
cp -r "$checkout/tests" "$work/tests"

url=${2:-}
if [ -z "$url" ]; then
  port=$("$here/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  FHIRSERVER_AUTH=off "$here/.venv/bin/fhirserver" serve --port "$port" --data-dir "$work/data" \
    > "$work/server.log" 2>&1 &
  server_pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.5; done
  url="http://127.0.0.1:$port/fhir"
fi
cd "$work"
FHIR_SERVER_URL="$url" "$work/venv/bin/python" -m pytest tests -o addopts="" -q -p no:cacheprovider \
  -rfE --tb=line "${@:3}" || true
