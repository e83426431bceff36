#!/usr/bin/env bash
# Forecast benchmark, timed with the release binary: `tend forecast --weeks 12` on the
# starter business with 10,000 imported leads (enrolled by the copy's engine when it
# starts, as the live engine would), and on the starter with 1,000 as the same-run
# baseline. Usage: scripts/bench-forecast.sh [CONTACTS]
set -euo pipefail
cd "$(dirname "$0")/.."
contacts="${1:-10000}"
cargo build --release -p tend >/dev/null
tend="${CARGO_TARGET_DIR:-$PWD/target}/release/tend"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
for n in 1000 "$contacts"; do
  "$tend" init "$work/biz-$n" >/dev/null
  python3 - "$n" > "$work/biz-$n/leads.csv" <<'PY'
import sys
print("email,name,stage,timezone")
for i in range(int(sys.argv[1])):
    print(f"lead{i}@example.com,Lead {i},lead,Europe/Rome")
PY
  (cd "$work/biz-$n" && "$tend" import contacts leads.csv >/dev/null)
  echo "== $n contacts"
  (cd "$work/biz-$n" && /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KB" \
    "$tend" forecast --weeks 12 --json > "$work/forecast-$n.json")
  python3 - "$work/forecast-$n.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
emails = sum(d["emails"] for d in f["days"])
tasks = sum(d["tasks"] for d in f["days"])
print(f"   {len(f['days'])} days, {emails} emails, {tasks} tasks, {f['at_risk_total']} leads at risk")
PY
done
