#!/usr/bin/env bash
# CPU time and wall time of the quickstart on this machine, quiet or beside one other CPU-bound job.
#   bench/quickstart_threads.sh VENV LABEL quiet|loaded [extra `specclip run` arguments, e.g. --threads 1]
# VENV is the virtual environment whose `specclip` runs (an older checkout's, for a before/after
# comparison). The run starts from an empty run directory; the dataset cache ($SPECCLIP_CACHE) is
# warmed by a first run and kept, so the figures are compute, not download. Appends one line to
# bench/results/quickstart_threads.tsv: label, load, wall s, user+sys CPU s, peak RSS MB, 1-min load
# average at start and end.
set -euo pipefail
venv=$1 label=$2 load=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
hog=""
if [ "$load" = loaded ]; then
  python3 -c 'while True: pass' & hog=$!
  trap 'kill $hog 2>/dev/null || true' EXIT
  sleep 20
fi
l0=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/time -f '%e %U %S %M' -o "$out/time" "$venv/bin/specclip" run quickstart --run-dir "$out/run" "$@" > "$out/log" 2>&1
l1=$(cut -d' ' -f1 /proc/loadavg)
read -r wall user sys rss < "$out/time"
cpu=$(python3 -c "print(round($user + $sys))")
mkdir -p "$here/results"
printf '%s\t%s\t%.0f\t%s\t%d\t%s\t%s\n' "$label" "$load" "$wall" "$cpu" $((rss / 1024)) "$l0" "$l1" | tee -a "$here/results/quickstart_threads.tsv"
report=$(find "$out/run" -name report.md | head -1)
[ -n "$report" ] && cp "$report" "$here/results/quickstart_threads_${label}_${load}.report.md"
grep -o "\"threads\": [0-9]*" "$out/run/manifest.json" 2>/dev/null || true
rm -rf "$out"
