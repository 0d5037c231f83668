#!/usr/bin/env bash
# The test command: installs Azurite and playwright-core (npm) and chromium
# (Debian) if needed, starts a private Azurite on
# free loopback ports (on disk, in a temp dir), checks formatting, vet and
# the determinism analyzer (cmd/durable-vet),
# runs every test with the race detector, and stops Azurite.
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestSeed -v).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/azurite/dist/src/azurite.js ] || [ ! -f node_modules/playwright-core/package.json ]; then
  npm ci --no-audit --no-fund
fi
# The dashboard's browser test drives Debian's chromium (never a browser
# download): install it when missing and we can.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the dashboard's browser test needs Debian's chromium: run 'sudo apt-get install chromium' first" >&2
    exit 1
  fi
fi
tmp=$(mktemp -d)
blob=$(scripts/free-port.sh) queue=$(scripts/free-port.sh) table=$(scripts/free-port.sh)
pid=$(scripts/azurite.sh "$tmp/azurite" "$blob" "$queue" "$table")
cleanup() {
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export DURABLE_TEST_STORAGE="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$blob/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$queue/devstoreaccount1;TableEndpoint=http://127.0.0.1:$table/devstoreaccount1;"
echo "Azurite is up (blob $blob, queue $queue, table $table)"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
# The determinism analyzer over the project's own orchestrators (see
# "Checking determinism at build time" in the README).
go build -o "$tmp/durable-vet" ./cmd/durable-vet
go vet -vettool="$tmp/durable-vet" ./...
go test -race -count=1 -timeout 20m "$@" ./...
