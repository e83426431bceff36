#!/usr/bin/env bash
# End-to-end simulator benchmark, timed with the release binary: a simulated year,
# three strategies, first of the starter business exactly as `tend init` writes it
# (about 1,000 leads: the baseline), then of the same business scaled to about
# 10,000 contacts (2,000 leads waiting on day one, 155 new ones a week, capacity and
# budgets scaled to match). Usage: scripts/bench-simulate.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-7}"
cargo build --release -p tend >/dev/null
tend="${CARGO_TARGET_DIR:-$PWD/target}/release/tend"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$tend" init "$work/biz" >/dev/null
cd "$work/biz"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== baseline: the starter business"
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$tend" simulate scenario.toml --out "$work/base" --seed "$seed"
echo "== 10,000 contacts"
sed -i \
  -e 's/^per_week = 6$/per_week = 60/' \
  -e 's/^emails = { per_day = 200, per_week = 800 }/emails = { per_day = 3000, per_week = 12000 }/' \
  -e 's/^staff_minutes = { per_day = 180 }/staff_minutes = { per_day = 2400 }/' \
  -e 's/^money = { per_month = 300.0 }/money = { per_month = 3000.0 }/' \
  tend.toml
sed -i \
  -e 's/^initial_leads = .*/initial_leads = 2000/' \
  -e 's/^leads_per_week = .*/leads_per_week = 155/' \
  scenario.toml
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$tend" simulate scenario.toml --out "$work/out" --seed "$seed"
