#!/usr/bin/env bash
# Runs the sample app with its storage: starts Azurite on the standard ports
# (10000-10002, data in .azurite/) unless something already listens there,
# builds the app and serves it standalone on http://127.0.0.1:7071.
# Then: curl -i -X POST http://127.0.0.1:7071/api/orchestrators/Orchestrator
set -euo pipefail
cd "$(dirname "$0")/.."
pid=""
if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10002/devstoreaccount1?comp=list || true)" = "000" ]; then
  pid=$(scripts/azurite.sh .azurite 10000 10001 10002)
  echo "Azurite started (data in .azurite/, log in .azurite/azurite.log)"
  trap 'kill $pid 2>/dev/null || true' EXIT
fi
go build -o durable-app .
./durable-app "$@"
