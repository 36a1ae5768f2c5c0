#!/usr/bin/env bash
# Conformance runner: moto's SQS test-suite (moto 5.2.5 sdist) against a Redrive server,
# once with the AWS JSON 1.0 protocol (current boto3) and once with the AWS Query protocol
# (boto3 1.26.126 / botocore 1.29.126, the last botocore whose SQS model is awsQuery).
#
# Procedure: shared/reference/conformance-moto.md. Nothing from moto is committed; the suite is
# downloaded from PyPI into a scratch directory on first use and reused afterwards.
#
# Environment:
#   REDRIVE_BIN      server binary (default <repo>/target/debug/redrive); started per protocol as
#                    "$REDRIVE_BIN serve --in-memory --port PORT --account-id 123456789012"
#   CONFORMANCE_DIR  scratch directory (default <repo>/.conformance/moto)
#   PROTOCOLS        protocols to run, space separated (default "json query")
#   PYTEST_ARGS      extra pytest arguments, e.g. PYTEST_ARGS="-k test_send_message -x"
#   KEEP_SERVER_LOG  if 1, print the tail of each server log after its run, even on success
#                    (logs are always written to $CONFORMANCE_DIR/server-<protocol>.log)
#   INSTALL_ONLY     if 1, install the venvs and unpack the suite, then exit (no server needed)
#   SERVERS          number of servers per protocol (default 1). With more than one, every
#                    request goes to the next server in turn through tests/conformance/alternate.py,
#                    and REDRIVE_STORE must name the store they share.
#   REDRIVE_STORE    passed to the servers as "--store REDRIVE_STORE" instead of "--in-memory"
#   PROXY            if 1, put alternate.py in front even of one server (checks the proxy itself)
#   RESET_STORE_CMD  shell command run before each protocol's servers start (e.g. to empty a
#                    shared database), only with REDRIVE_STORE
#   PYTHON           python used to create the venvs (default python3; needs >= 3.11 and venv)
#
# Known failures: tests/conformance/expected.txt ("<protocol> <nodeid>  # reason").
# Exit status: 0 if every failing test is listed there for its protocol, 1 otherwise.
set -euo pipefail

MOTO_VERSION=5.2.5
QUERY_BOTO3=1.26.126
QUERY_BOTOCORE=1.29.126
ACCOUNT_ID=123456789012

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
W="${CONFORMANCE_DIR:-$REPO/.conformance/moto}"
REDRIVE_BIN="${REDRIVE_BIN:-$REPO/target/debug/redrive}"
PROTOCOLS="${PROTOCOLS:-json query}"
PYTEST_ARGS="${PYTEST_ARGS:-}"
KEEP_SERVER_LOG="${KEEP_SERVER_LOG:-0}"
INSTALL_ONLY="${INSTALL_ONLY:-0}"
PYTHON="${PYTHON:-python3}"
SERVERS="${SERVERS:-1}"
REDRIVE_STORE="${REDRIVE_STORE:-}"
PROXY="${PROXY:-0}"
RESET_STORE_CMD="${RESET_STORE_CMD:-}"
EXPECTED="$HERE/expected.txt"

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { printf '[conformance] error: %s\n' "$*" >&2; exit 2; }

mkdir -p "$W"
W="$(cd "$W" && pwd)"

# ---------------------------------------------------------------------------------------------
# Install (idempotent: each step leaves a marker file and is skipped when the marker exists)
# ---------------------------------------------------------------------------------------------
make_venv() {  # $1 = name, rest = pip requirements
  local name=$1; shift
  local venv="$W/venv-$name" marker="$W/venv-$name/.redrive-installed-$MOTO_VERSION"
  if [[ -f "$marker" ]]; then return 0; fi
  log "creating $venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
  "$venv/bin/python" -m pip freeze --disable-pip-version-check > "$W/pip-freeze-$name.txt"
  touch "$marker"
}

unpack_suite() {
  local suite="$W/suite" marker="$W/suite/.redrive-unpacked-$MOTO_VERSION"
  if [[ -f "$marker" ]]; then return 0; fi
  local tarball="$W/sdist/moto-$MOTO_VERSION.tar.gz"
  if [[ ! -f "$tarball" ]]; then
    log "downloading moto $MOTO_VERSION sdist"
    "$W/venv-json/bin/python" -m pip download -q --disable-pip-version-check \
      --no-deps --no-binary :all: "moto==$MOTO_VERSION" -d "$W/sdist"
  fi
  [[ -f "$tarball" ]] || die "sdist not found at $tarball"
  log "unpacking suite into $suite"
  rm -rf "$suite"
  mkdir -p "$suite"
  local parts="pyproject.toml tests/__init__.py tests/conftest.py tests/markers.py tests/test_sqs
               tests/test_awslambda tests/test_ecr tests/test_s3/__init__.py"
  local members=()
  for p in $parts; do members+=("moto-$MOTO_VERSION/$p"); done
  tar -xzf "$tarball" -C "$suite" --strip-components=1 "${members[@]}"

  # §2.3: the account_id fixture would call STS on the target; override it.
  cat >> "$suite/tests/test_sqs/conftest.py" <<'PY'

import os as _os
import pytest as _pytest


@_pytest.fixture
def account_id():
    """Account of the server under test; no STS call."""
    return _os.environ.get("SQS_TEST_ACCOUNT_ID", "123456789012")
PY

  # §2.4: two URL assertions hard-code http://localhost:5000 in server mode.
  local f="$suite/tests/test_sqs/test_sqs.py"
  sed -i 's#"http://localhost:5000" if settings.TEST_SERVER_MODE#settings.test_server_mode_endpoint() if settings.TEST_SERVER_MODE#' "$f"
  local n
  n=$(grep -c 'settings.test_server_mode_endpoint() if settings.TEST_SERVER_MODE' "$f" || true)
  [[ "$n" -gt 0 ]] || die "URL patch did not apply to $f"
  touch "$marker"
}

install_all() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON must be Python >= 3.11"
  make_venv json "moto[server]==$MOTO_VERSION" boto3 pytest pytest-timeout freezegun
  make_venv query "moto==$MOTO_VERSION" "boto3==$QUERY_BOTO3" "botocore==$QUERY_BOTOCORE" \
    pytest pytest-timeout freezegun
  unpack_suite
}

install_all
if [[ "$INSTALL_ONLY" == 1 ]]; then
  log "install complete in $W"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Server lifecycle
# ---------------------------------------------------------------------------------------------
[[ -x "$REDRIVE_BIN" ]] || die "server binary not found or not executable: $REDRIVE_BIN (run cargo build, or set REDRIVE_BIN)"

[[ "$SERVERS" =~ ^[1-9][0-9]*$ ]] || die "SERVERS must be a positive number, not '$SERVERS'"
if (( SERVERS > 1 )) && [[ -z "$REDRIVE_STORE" ]]; then
  die "SERVERS=$SERVERS needs REDRIVE_STORE (servers with separate in-memory stores share nothing)"
fi
if (( SERVERS > 1 )); then PROXY=1; fi

SERVER_PIDS=()   # the servers, then the proxy if any
cleanup() {
  local pid
  for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() {  # $1 = protocol, $2 = port, $3 = log file, $4 = pid
  local proto=$1 port=$2 logf=$3 pid=$4
  local deadline=$((SECONDS + 30)) code
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      log "server exited during startup ($proto); last lines of $logf:"
      tail -n 40 "$logf" >&2 || true
      cleanup
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
      -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.ListQueues' \
      -d '{}' "http://127.0.0.1:$port/" || true)
    if [[ "$code" == 200 ]]; then return 0; fi
    if (( SECONDS >= deadline )); then
      log "server did not answer ListQueues with 200 within 30 s ($proto, last status '$code'); last lines of $logf:"
      tail -n 40 "$logf" >&2 || true
      cleanup
      return 1
    fi
    sleep 0.2
  done
}

# Starts SERVERS servers (and the proxy when PROXY=1); sets ENDPOINT_PORT. Not to be called in a
# subshell: SERVER_PIDS must reach cleanup.
start_servers() {  # $1 = protocol
  local proto=$1 k port logf store_args=(--in-memory) upstreams=()
  if [[ -n "$REDRIVE_STORE" ]]; then
    store_args=(--store "$REDRIVE_STORE")
    if [[ -n "$RESET_STORE_CMD" ]]; then
      log "$proto: resetting the shared store (RESET_STORE_CMD)"
      bash -c "$RESET_STORE_CMD" >&2 || { log "$proto: RESET_STORE_CMD failed"; return 1; }
    fi
  fi
  for ((k = 1; k <= SERVERS; k++)); do
    port=$(free_port)
    logf="$W/server-$proto$( (( SERVERS > 1 )) && echo "-$k").log"
    : > "$logf"
    log "$proto: starting $REDRIVE_BIN ${store_args[0]} on 127.0.0.1:$port (log: $logf)"
    "$REDRIVE_BIN" serve "${store_args[@]}" --port "$port" --account-id "$ACCOUNT_ID" \
      >"$logf" 2>&1 &
    SERVER_PIDS+=($!)
    wait_ready "$proto" "$port" "$logf" "$!" || return 1
    upstreams+=(--upstream "127.0.0.1:$port")
  done
  if [[ "$PROXY" == 1 ]]; then
    if (( SERVERS == 1 )); then upstreams+=("${upstreams[@]}"); fi   # alternate over one server
    port=$(free_port)
    logf="$W/proxy-$proto.log"
    log "$proto: alternating proxy on 127.0.0.1:$port (log: $logf)"
    "$PYTHON" "$HERE/alternate.py" --listen "127.0.0.1:$port" "${upstreams[@]}" >"$logf" 2>&1 &
    SERVER_PIDS+=($!)
    wait_ready "$proto" "$port" "$logf" "$!" || return 1
  fi
  ENDPOINT_PORT=$port
}

# ---------------------------------------------------------------------------------------------
# Result analysis: junit XML + expected.txt -> summary; prints "<passed> <unexpected> <skipped>"
# on its last stdout line.
# ---------------------------------------------------------------------------------------------
analyze() {  # $1 = protocol, $2 = junit xml
  "$PYTHON" - "$1" "$2" "$EXPECTED" "$W/suite" <<'PY'
import os, re, sys
import xml.etree.ElementTree as ET

proto, xml_path, expected_path, suite = sys.argv[1:5]

known = {}
if os.path.exists(expected_path):
    with open(expected_path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or parts[0] not in ("json", "query"):
                print(f"[conformance] warning: {expected_path}:{lineno}: cannot parse: {raw.rstrip()}",
                      file=sys.stderr)
                continue
            reason = raw.split("#", 1)[1].strip() if "#" in raw else ""
            known[(parts[0], parts[1].strip())] = reason

def nodeid(classname, name):
    parts = classname.split(".") if classname else []
    for i in range(len(parts), 0, -1):
        if os.path.isfile(os.path.join(suite, *parts[:i]) + ".py"):
            return "::".join(["/".join(parts[:i]) + ".py"] + parts[i:] + [name])
    return "::".join([p for p in (classname, name) if p])

rank = {"passed": 0, "skipped": 1, "failed": 2}
outcome = {}
tree = ET.parse(xml_path)
for tc in tree.iter("testcase"):
    nid = nodeid(tc.get("classname", ""), tc.get("name", ""))
    if tc.find("failure") is not None or tc.find("error") is not None:
        o = "failed"
    elif tc.find("skipped") is not None:
        o = "skipped"
    else:
        o = "passed"
    if nid not in outcome or rank[o] > rank[outcome[nid]]:
        outcome[nid] = o

def listed(nid):
    for (p, k) in known:
        if p == proto and (k == nid or nid.endswith("/" + k) or nid.endswith("::" + k)):
            return True
    return False

passed = sorted(n for n, o in outcome.items() if o == "passed")
skipped = sorted(n for n, o in outcome.items() if o == "skipped")
failed = sorted(n for n, o in outcome.items() if o == "failed")
unexpected = [n for n in failed if not listed(n)]
known_failed = [n for n in failed if listed(n)]
now_passing = [n for n in passed if listed(n)]

for n in known_failed:
    print(f"[conformance] {proto}: known failure (expected.txt): {n}", file=sys.stderr)
for n in now_passing:
    print(f"[conformance] {proto}: unexpectedly passing, remove from expected.txt: {proto} {n}",
          file=sys.stderr)
for n in unexpected:
    print(f"[conformance] {proto}: UNEXPECTED FAILURE: {n}", file=sys.stderr)
print(f"{len(passed)} {len(unexpected)} {len(skipped)} {len(known_failed)}")
PY
}

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
total_passed=0
total_unexpected=0
summaries=()

run_protocol() {  # $1 = json | query
  local proto=$1
  local venv="$W/venv-$proto"
  [[ -x "$venv/bin/pytest" ]] || die "unknown protocol '$proto' (expected json or query)"
  local junit="$W/moto-sqs-$proto.xml" logf="$W/server-$proto*.log" port
  rm -f "$junit"
  if start_servers "$proto"; then port=$ENDPOINT_PORT; else
    summaries+=("moto-sqs $proto: server failed to start")
    total_unexpected=$((total_unexpected + 1))
    return 0
  fi

  # PYTEST_ARGS is split like a shell command line (quotes allowed), without evaluating it.
  local extra=()
  if [[ -n "$PYTEST_ARGS" ]]; then
    mapfile -t extra < <(PYTEST_ARGS="$PYTEST_ARGS" "$PYTHON" -c \
      'import os, shlex; print("\n".join(shlex.split(os.environ["PYTEST_ARGS"])))')
  fi

  local rc=0
  ( cd "$W/suite"
    export TEST_SERVER_MODE=true TEST_SERVER_MODE_ENDPOINT="http://127.0.0.1:$port" \
           MOTO_CALL_RESET_API=false TESTS_SKIP_REQUIRES_DOCKER=true \
           AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
           SQS_TEST_ACCOUNT_ID="$ACCOUNT_ID"
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_SQS || true
    "$venv/bin/pytest" \
      tests/test_sqs/test_sqs.py tests/test_sqs/test_sqs_message_attributes.py \
      --deselect tests/test_sqs/test_sqs.py::test_is_empty_redrive_policy_returns_true_for_empty_and_falsy_values \
      --deselect tests/test_sqs/test_sqs.py::test_is_empty_redrive_policy_returns_false_for_valid_policy_format \
      -p no:cacheprovider -q -rfEs --color=no --timeout 120 \
      --junitxml="$junit" ${extra[@]+"${extra[@]}"} ) || rc=$?

  local server_died=0 pid
  for pid in "${SERVER_PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then server_died=1; fi
  done
  cleanup

  if [[ "$server_died" == 1 || "$KEEP_SERVER_LOG" == 1 ]]; then
    [[ "$server_died" == 1 ]] && log "$proto: a server exited during the run"
    local f
    for f in $logf "$W/proxy-$proto.log"; do
      [[ -f "$f" ]] || continue
      log "$proto: last lines of $f:"
      tail -n 40 "$f" >&2 || true
    done
  fi

  # pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected (ok only with PYTEST_ARGS).
  local infra=0
  case "$rc" in
    0|1) ;;
    5) if [[ -z "$PYTEST_ARGS" ]]; then log "$proto: pytest collected no tests"; infra=1; fi ;;
    *) log "$proto: pytest exited with status $rc"; infra=1 ;;
  esac
  if [[ ! -s "$junit" ]]; then
    log "$proto: no junit report at $junit"
    summaries+=("moto-sqs $proto: no results (pytest status $rc)")
    total_unexpected=$((total_unexpected + 1))
    return 0
  fi

  local line p u s k
  line=$(analyze "$proto" "$junit" | tail -n 1)
  read -r p u s k <<<"$line"
  if [[ "$infra" == 1 || "$server_died" == 1 ]]; then u=$((u + 1)); fi
  total_passed=$((total_passed + p))
  total_unexpected=$((total_unexpected + u))
  local note=""
  if [[ "$k" -gt 0 ]]; then note=" ($k known failures in expected.txt)"; fi
  if [[ "$server_died" == 1 ]]; then note="$note (server crashed)"; fi
  summaries+=("moto-sqs $proto: $p passed, $u failed, $s skipped$note")
}

for proto in $PROTOCOLS; do
  run_protocol "$proto"
done

echo
for s in "${summaries[@]}"; do echo "$s"; done
echo "conformance: $total_passed passed, $total_unexpected failed"
if [[ "$total_unexpected" -gt 0 ]]; then exit 1; fi
exit 0
