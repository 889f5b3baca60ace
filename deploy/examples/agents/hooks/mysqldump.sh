#!/usr/bin/env bash
# UNTESTED HERE: this repository's test machine has no MySQL server; the
# script follows the same contract as pg-dump.sh (which is tested). Try it
# against a scratch database before relying on it.
#
# Stillpoint backup hook: mysqldump of one MySQL database, taken while the
# Ledger (or Auditor) cluster is paused. --single-transaction gives a
# consistent InnoDB snapshot without locking tables.
#
# Usage (as the hook's command, see mysql-agent.yaml):
#   mysqldump.sh DATABASE
# Environment:
#   STILLPOINT_OP_ID      set by Stillpoint: the backup op (names the directory)
#   BACKUP_DIR            where dumps go: BACKUP_DIR/<op id>/<database>.sql.gz
#   MYSQL_DEFAULTS_FILE   an option file with [client] host, user, password
#                         (mode 0600; never a password on the command line)
#
# The last output line is the dump's path. Restore with:
#   gunzip -c BACKUP_DIR/<op id>/<database>.sql.gz | mysql --defaults-extra-file=...
set -euo pipefail

db="${1:?usage: mysqldump.sh DATABASE}"
op="${STILLPOINT_OP_ID:?STILLPOINT_OP_ID is not set: run this script as a Stillpoint hook}"
: "${BACKUP_DIR:?set BACKUP_DIR in the hook definition (env:)}"
: "${MYSQL_DEFAULTS_FILE:?set MYSQL_DEFAULTS_FILE in the hook definition (env:)}"
case "$op" in
  */* | .*) echo "refusing op id '$op' as a directory name" >&2; exit 2 ;;
esac

dir="$BACKUP_DIR/$op"
out="$dir/$db.sql.gz"
tmp="$out.partial"
mkdir -p "$dir"
if [ -e "$out" ]; then
  echo "$out already exists (this op's dump was taken before); not overwriting it" >&2
  exit 3
fi

echo "mysqldump of database $db for op $op ..."
# pipefail: a failing mysqldump fails the hook even though gzip succeeds.
mysqldump --defaults-extra-file="$MYSQL_DEFAULTS_FILE" --single-transaction \
  --routines --triggers --events --hex-blob --databases "$db" | gzip -c > "$tmp"
mv "$tmp" "$out"
echo "mysqldump of $db done: $(wc -c < "$out") bytes (gzip)"
echo "$out"
