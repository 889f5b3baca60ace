#!/usr/bin/env bash
# machine.sh prints, as Markdown, the machine a benchmark run measures:
# date, commit, CPU, cores, memory, the disks and filesystems the
# benchmarks write to, and the load average now. Read from /proc, df and
# lsblk, never guessed. `make bench` prints it first.
set -u
dir=${TMPDIR:-/tmp}
echo "### Machine"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)')"
echo "- go: $(go version 2>/dev/null | awk '{print $3, $4}')"
echo "- cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores online ($(grep -c '^processor' /proc/cpuinfo) in /proc/cpuinfo)"
echo "- memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) total, $(awk '/^MemAvailable/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) available"
echo "- kernel: $(uname -r)"
for p in "$dir" /dev/shm; do
	df -PT "$p" 2>/dev/null | awk -v p="$p" 'NR==2{printf "- %s: %s on %s (%s, %s 1K-blocks)", p, $2, $1, $7, $3}'
	dev=$(df -P "$p" 2>/dev/null | awk 'NR==2{print $1}')
	if [ -b "$dev" ]; then
		lsblk -dno NAME,ROTA,TYPE,SIZE "$dev" 2>/dev/null | awk '{printf ", block device %s: %s, rotational=%s, %s", $1, $3, $2, $4}'
	fi
	echo
done
echo "- load average (1/5/15 min) at start: $(cut -d' ' -f1-3 /proc/loadavg)"
