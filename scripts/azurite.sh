#!/usr/bin/env bash
# Starts Azurite (pinned in package.json) on loopback, on disk, and waits
# until its three services answer. Usage:
#   scripts/azurite.sh DATA_DIR BLOB_PORT QUEUE_PORT TABLE_PORT
# Prints Azurite's PID on stdout. On-disk mode because in-memory Azurite
# freezes for seconds under sustained queue traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 blob=$2 queue=$3 table=$4
if [ ! -f node_modules/azurite/dist/src/azurite.js ]; then
  npm ci --no-audit --no-fund >&2
fi
mkdir -p "$dir"
node node_modules/azurite/dist/src/azurite.js \
  --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
  --blobPort "$blob" --queuePort "$queue" --tablePort "$table" \
  --location "$dir" --silent --disableTelemetry --skipApiVersionCheck \
  >"$dir/azurite.log" 2>&1 &
pid=$!
for port in "$blob" "$queue" "$table"; do
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "Azurite exited during start-up; its log:" >&2
      cat "$dir/azurite.log" >&2
      exit 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/devstoreaccount1?comp=list" || true)
    [ "$code" != "000" ] && break
    sleep 0.05
  done
done
echo "$pid"
