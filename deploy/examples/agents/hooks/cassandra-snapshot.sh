#!/usr/bin/env bash
# UNTESTED HERE: this repository's test machine has no Cassandra; the
# script follows the same contract as pg-dump.sh (which is tested). Try it
# against a scratch cluster before relying on it.
#
# Stillpoint backup hook: `nodetool snapshot` on every Cassandra node,
# tagged with the backup op's id, taken while the Ledger cluster is paused
# (Cassandra is not transactional across nodes: the pause is what makes the
# snapshots consistent).
#
# Usage (as the hook's command, see cassandra-agent.yaml):
#   cassandra-snapshot.sh [KEYSPACE ...]     (no keyspace: all of them)
# Environment:
#   STILLPOINT_OP_ID   set by Stillpoint: the snapshot tag
#   CASSANDRA_HOSTS    space-separated JMX hosts (default: localhost)
#   NODETOOL_OPTS      extra nodetool options (e.g. -u user -pwf /etc/...)
#
# The last output line is the snapshot tag. Restore: copy each table's
# snapshots/<tag>/ files back into its data directory on every node (or use
# sstableloader), with Ledger and Auditor stopped.
set -euo pipefail

tag="${STILLPOINT_OP_ID:?STILLPOINT_OP_ID is not set: run this script as a Stillpoint hook}"
hosts="${CASSANDRA_HOSTS:-localhost}"
read -r -a opts <<< "${NODETOOL_OPTS:-}"

for host in $hosts; do
  echo "nodetool snapshot -t $tag on $host ${*:-(all keyspaces)} ..."
  nodetool -h "$host" "${opts[@]}" snapshot -t "$tag" "$@"
done
echo "snapshot $tag taken on: $hosts"
echo "$tag"
