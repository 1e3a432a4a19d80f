#!/usr/bin/env bash
# Run the Autobahn|Testsuite against the syncws server and client; see README.md.
#
#   benchmarks/autobahn/run.sh REPORT_DIR [server|client|both]
#
# Reports go to REPORT_DIR/server and REPORT_DIR/client (index.html, index.json, one file per
# case). Everything listens on 127.0.0.1 only, and every step is bounded by a timeout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: run.sh REPORT_DIR [server|client|both]}
SIDES=${2:-both}
VENV=${AUTOBAHN_VENV:-/tmp/autobahn-venv}
PYTHON=${PYTHON:-python3}
SERVER_PORT=9002      # the syncws echo server: must match fuzzingclient.json
FUZZING_PORT=9001     # the fuzzing server: must match fuzzingserver.json
SUITE_TIMEOUT=${SUITE_TIMEOUT:-3600}
CASE_TIMEOUT=${CASE_TIMEOUT:-60}

case $SIDES in
    server | client | both) ;;
    *) echo "usage: run.sh REPORT_DIR [server|client|both]" >&2; exit 2 ;;
esac

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The testsuite is Python 2 code (Twisted 19.10, autobahn 0.10.9): it gets a Python 2.7
# virtualenv of its own, apart from the environment that syncws runs in.
find_python2() {
    local candidate
    for candidate in "${AUTOBAHN_PYTHON2:-}" "$(command -v python2.7 || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python; do
        if [[ -n $candidate && -x $candidate ]]; then
            echo "$candidate"
            return 0
        fi
    done
    echo "no Python 2.7 found: set AUTOBAHN_PYTHON2" >&2
    return 1
}

setup_venv() {
    if [[ -x $VENV/bin/wstest ]] && "$VENV/bin/wstest" --help >/dev/null 2>&1; then
        return 0
    fi
    local python2 bootstrap
    python2=$(find_python2)
    bootstrap=$(mktemp -d)
    echo "setting up $VENV with $python2"
    # virtualenv 16 still runs on Python 2; installed in a scratch directory only.
    timeout 300 "$python2" -m pip install --quiet --disable-pip-version-check \
        --target "$bootstrap" 'virtualenv<20'
    rm -rf "$VENV"
    PYTHONPATH=$bootstrap timeout 300 "$python2" -m virtualenv --quiet "$VENV"
    rm -rf "$bootstrap"
    timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'autobahntestsuite==25.10.1'
    "$VENV/bin/wstest" --autobahnversion
}

# wstest, with the listening sockets of the fuzzing server bound to 127.0.0.1 rather than to
# every interface: run as "$VENV/bin/python" -c "$WSTEST" ARGUMENTS...
WSTEST='
import sys
from autobahn.twisted import websocket
from autobahntestsuite import fuzzing
from autobahntestsuite.wstest import run

def listen_loopback(factory, context_factory=None):
    return websocket.listenWS(factory, context_factory, interface="127.0.0.1")

fuzzing.listenWS = listen_loopback
sys.argv[0] = "wstest"
run()
'

# Wait until something listens on 127.0.0.1:$1, for at most 30 s.
wait_for_port() {
    local port=$1 attempt
    for attempt in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

# Fail if something listens on 127.0.0.1:$1 already: the cases would run against it.
check_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        echo "127.0.0.1:$1 is in use already" >&2
        return 1
    fi
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT

run_server_side() {
    echo "== syncws server: wstest -m fuzzingclient"
    rm -rf "$OUT/server"
    check_port_free "$SERVER_PORT"
    "$PYTHON" "$HERE/echo_server.py" --port "$SERVER_PORT" --lifetime "$SUITE_TIMEOUT" \
        >"$OUT/echo_server.log" 2>&1 &
    PIDS+=($!)
    wait_for_port "$SERVER_PORT"
    (cd "$OUT" && timeout "$SUITE_TIMEOUT" "$VENV/bin/python" -c "$WSTEST" \
        -m fuzzingclient -s "$HERE/fuzzingclient.json") >"$OUT/fuzzingclient.log" 2>&1
    cleanup
}

run_client_side() {
    echo "== syncws client: wstest -m fuzzingserver"
    rm -rf "$OUT/client"
    check_port_free "$FUZZING_PORT"
    (cd "$OUT" && exec timeout "$SUITE_TIMEOUT" "$VENV/bin/python" -c "$WSTEST" \
        -m fuzzingserver -u 0 -s "$HERE/fuzzingserver.json") >"$OUT/fuzzingserver.log" 2>&1 &
    PIDS+=($!)
    wait_for_port "$FUZZING_PORT"
    timeout "$SUITE_TIMEOUT" "$PYTHON" "$HERE/client.py" \
        --server "ws://127.0.0.1:$FUZZING_PORT" --case-timeout "$CASE_TIMEOUT" \
        2>&1 | tee "$OUT/client.log"
    cleanup
}

setup_venv
if [[ $SIDES != client ]]; then
    run_server_side
fi
if [[ $SIDES != server ]]; then
    run_client_side
fi

echo "== summary"
summary=()
[[ $SIDES != client ]] && summary+=("$OUT/server")
[[ $SIDES != server ]] && summary+=("$OUT/client")
"$PYTHON" "$HERE/summarize.py" "${summary[@]}" | tee "$OUT/summary.txt"
