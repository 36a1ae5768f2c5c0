#!/usr/bin/env bash
# CloudWatch API with boto3: the current botocore (JSON 1.0) and a Query-era one (botocore
# 1.34.x, whose CloudWatch model is query-only), each in its own venv under
# .conformance/cloudwatch, against a built `target/debug/redrive`.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${REDRIVE_BIN:-target/debug/redrive}"
DIR=.conformance/cloudwatch
[ -x "$BIN" ] || { echo "build the server first: cargo build -p redrive" >&2; exit 1; }

venv() { # name, pip requirement
    local v="$DIR/$1"
    if [ ! -x "$v/bin/python" ]; then
        python3 -m venv "$v"
        "$v/bin/pip" install --quiet --disable-pip-version-check "$2"
    fi
}
venv current "boto3"
venv query "boto3==1.34.162"

"$DIR/current/bin/python" tests/cloudwatch/run_burst.py "$BIN" json
"$DIR/query/bin/python" tests/cloudwatch/run_burst.py "$BIN" query
