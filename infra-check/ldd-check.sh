#!/bin/sh
# usage: ldd-check.sh BINARY
# Fails unless BINARY links only glibc (libc, libm and glibc's compatibility stubs libpthread, libdl,
# librt, libutil), libgcc_s, the dynamic loader and the vDSO: what gcr.io/distroless/cc-debian12
# provides. In particular no OpenSSL (libssl, libcrypto): TLS is rustls.
set -eu
bin=${1:?usage: ldd-check.sh BINARY}
[ -x "$bin" ] || { echo "ldd-check: $bin: not an executable file" >&2; exit 2; }
libs=$(ldd "$bin") || { echo "ldd-check: ldd failed on $bin" >&2; exit 1; }
bad=$(printf '%s\n' "$libs" | awk '{print $1}' | grep -v -E \
    '^(linux-vdso\.so\.1|linux-gate\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|/?.*ld-linux[-a-z0-9_.]*\.so\.[0-9]+)$' || true)
if [ -n "$bad" ]; then
    echo "ldd-check: $bin links libraries the distroless cc runtime does not have:" >&2
    printf '%s\n' "$libs" | grep -F "$bad" >&2 || true
    exit 1
fi
