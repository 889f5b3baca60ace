#!/usr/bin/env bash
# Wait until the compose deployment can pause: a leader answers and every
# Ledger and Auditor node would be admitted now (`stillpoint drift` exits 0).
# Usage: deploy/docker/wait-ready.sh [TIMEOUT_SECONDS]   (default 180)
# COMPOSE (default: docker-compose) and COMPOSE_PROJECT (default: stillpoint)
# pick the Compose command and project.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
timeout=${1:-180}
read -r -a compose <<<"${COMPOSE:-docker-compose}"
dc=("${compose[@]}" -p "${COMPOSE_PROJECT:-stillpoint}" -f "$here/compose.yaml")
deadline=$((SECONDS + timeout))
for cluster in ledger auditor; do
	until out=$("${dc[@]}" run --rm cli drift --cluster "$cluster" 2>&1); do
		if ((SECONDS >= deadline)); then
			echo "wait-ready: cluster $cluster not admitted after ${timeout}s:" >&2
			echo "$out" >&2
			exit 1
		fi
		sleep 2
	done
done
echo "$out"
echo "ready: every ledger and auditor node would be admitted"
