#!/usr/bin/env bash
# Stillpoint backup hook: pg_dump of one PostgreSQL database in custom
# format, taken while the Ledger (or Auditor) cluster is paused.
# Tested: deploy/examples/agents/examples_test.go runs it through the hook
# executor against a real PostgreSQL and restores the dump with pg_restore.
#
# Usage (as the hook's command, see postgres-agent.yaml):
#   pg-dump.sh DATABASE
# Environment:
#   STILLPOINT_OP_ID   set by Stillpoint: the backup op (names the directory)
#   BACKUP_DIR         where dumps go: BACKUP_DIR/<op id>/<database>.dump
#   PGHOST, PGPORT, PGUSER, PGPASSFILE ...  the usual libpq variables, set
#                      in the hook's env (never a password on the command line)
#
# The last output line is the dump's path: Stillpoint keeps it with the
# catalog entry and the restore plan names it. The file name carries no
# restore point (it is not known until the pause ends); the op id links it
# to the catalog entry that has one. Restore with:
#   pg_restore --dbname=NEWDB --no-owner BACKUP_DIR/<op id>/<database>.dump
set -euo pipefail

db="${1:?usage: pg-dump.sh DATABASE}"
op="${STILLPOINT_OP_ID:?STILLPOINT_OP_ID is not set: run this script as a Stillpoint hook}"
: "${BACKUP_DIR:?set BACKUP_DIR in the hook definition (env:)}"
case "$op" in
  */* | .*) echo "refusing op id '$op' as a directory name" >&2; exit 2 ;;
esac

dir="$BACKUP_DIR/$op"
out="$dir/$db.dump"
tmp="$out.partial"
mkdir -p "$dir"
if [ -e "$out" ]; then
  echo "$out already exists (this op's dump was taken before); not overwriting it" >&2
  exit 3
fi

echo "pg_dump of database $db for op $op (step ${STILLPOINT_STEP_ID:-?}) ..."
pg_dump --format=custom --no-password --file="$tmp" --dbname="$db"
mv "$tmp" "$out"
echo "pg_dump of $db done: $(wc -c < "$out") bytes"
echo "$out"
