# Sourced by the scripts that run the service and the emulator for a
# demonstration (scripts/screenshots, scripts/walkthrough): a work directory,
# background processes that end with the script, and waiting for a URL.
#
# After sourcing: WORK is a fresh directory; add each background process's
# pid to PIDS; on exit they are killed and WORK removed.

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -P $$ 2>/dev/null || true # children not in PIDS, e.g. a process substitution's tee
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for URL: waits up to 20 s for it to answer 2xx; exits the script if it never does.
wait_for() {
  for _ in $(seq 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "no answer from $1" >&2
  exit 1
}
