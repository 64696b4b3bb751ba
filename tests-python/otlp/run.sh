#!/usr/bin/env bash
# The OpenTelemetry Python SDK's OTLP exporters against the emulator (gRPC,
# then HTTP/protobuf), read back through the emulator's Google APIs.
#
# Usage: tests-python/otlp/run.sh PATH_TO_cloudrun-observability
# Installs the pinned packages of requirements.txt into a virtualenv under
# ~/.cache/cloudrun-observability (once, saying so). The last line is always
# `otlp-python: N passed, M failed`; the exit status is non-zero on a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=${1:?usage: run.sh PATH_TO_cloudrun-observability}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cloudrun-observability
venv=$cache/otlp-venv-$(sha256sum "$here/requirements.txt" | cut -c1-12)
mkdir -p "$cache"

trap 'echo "otlp-python: setup failed (line $LINENO)" >&2; echo "otlp-python: 0 passed, 1 failed"' ERR
if [ ! -f "$venv/.complete" ]; then
    echo "otlp-python: installing opentelemetry-sdk, its OTLP exporters and Google's trace and monitoring clients into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" 2>/dev/null || {
        rm -rf "$venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$venv/.complete"
fi
[ -x "$binary" ] || { echo "otlp-python: $binary is not built" >&2; false; }
trap - ERR
exec "$venv/bin/python" "$here/test_otlp.py" "$binary"
