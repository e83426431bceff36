#!/usr/bin/env bash
# The pacer over years (issue 11): the starter business exactly as `tend init` writes
# it, simulated for 1, 2 and 3 years on seeds 1–8, three strategies each. Writes every
# run's summary.json under OUT and prints, per horizon and strategy, the mean and the
# min–max over seeds of touches, median touches per conversion, neglected leads,
# unsubscribes, revenue, revenue minus cost, days over capacity and mean wait.
# Usage: scripts/pacer-years.sh [OUT] [SEEDS] [DAYS...]
#   defaults: OUT=pacer-years, SEEDS="1 2 3 4 5 6 7 8", DAYS="365 730 1095";
#   TEND=/path/to/tend runs that binary instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-pacer-years}")"
seeds="${2:-1 2 3 4 5 6 7 8}"
shift $(( $# > 2 ? 2 : $# )) || true
days_list="${*:-365 730 1095}"
# TEND=/path/to/tend measures that binary instead of building this tree.
if [[ -z "${TEND:-}" && -z "${TABLE_ONLY:-}" ]]; then
  cargo build --release -p tend >/dev/null
  TEND="${CARGO_TARGET_DIR:-$PWD/target}/release/tend"
fi
tend="${TEND:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[[ -z "${TABLE_ONLY:-}" ]] && "$tend" init "$work/biz" >/dev/null
mkdir -p "$out"
[[ -z "${TABLE_ONLY:-}" ]] && echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); binary $tend" | tee "$out/machine.txt"
# TABLE_ONLY=1 prints the table of the summaries already under OUT, running nothing.
[[ -n "${TABLE_ONLY:-}" ]] && days_list=""
for days in $days_list; do
  sed -i -e "s/^days = .*/days = $days/" "$work/biz/scenario.toml"
  for seed in $seeds; do
    dir="$out/d$days-s$seed"
    "$tend" simulate "$work/biz/scenario.toml" --out "$dir" --seed "$seed" >/dev/null 2>&1
    echo "days $days seed $seed done" >&2
  done
done
python3 - "$out" <<'PY'
import json, pathlib, sys
from collections import defaultdict
out = pathlib.Path(sys.argv[1])
runs = defaultdict(list)
for f in sorted(out.glob("d*-s*/summary.json")):
    s = json.loads(f.read_text())
    for name, fig in s["strategies"].items():
        fig = dict(fig, revenue_minus_cost=fig["revenue"] - fig["cost"])
        runs[(s["days"], name)].append(fig)
cols = [("touches", "touches", 0), ("touches_per_conversion_median", "touches/conv", 1),
        ("neglected_leads", "neglected", 0), ("unsubscribes", "unsubs", 0),
        ("revenue", "revenue", 0), ("revenue_minus_cost", "revenue − cost", 0),
        ("days_over_capacity", "days over cap", 0), ("mean_wait_days", "mean wait (d)", 1)]
print("| days | strategy | seeds | " + " | ".join(c[1] for c in cols) + " |")
print("|---|---|--:|" + "--:|" * len(cols))
for (days, name), figs in sorted(runs.items(), key=lambda kv: (kv[0][0], ["background", "campaign", "unthrottled"].index(kv[0][1]))):
    cells = []
    for key, _, digits in cols:
        v = [f[key] for f in figs]
        mean = sum(v) / len(v)
        fmt = f"{{:,.{digits}f}}"
        cells.append(f"{fmt.format(mean)} ({fmt.format(min(v))}–{fmt.format(max(v))})")
    print(f"| {days} | {name} | {len(figs)} | " + " | ".join(cells) + " |")
# The acceptance ratios of issue 11, per horizon: background over unthrottled, worst seed.
print()
for days in sorted({d for d, _ in runs}):
    bg = {i: f for i, f in enumerate(runs.get((days, "background"), []))}
    un = {i: f for i, f in enumerate(runs.get((days, "unthrottled"), []))}
    if not bg or not un:
        continue
    t = max(bg[i]["touches"] / un[i]["touches"] for i in bg)
    u = max(bg[i]["unsubscribes"] / max(un[i]["unsubscribes"], 1) for i in bg)
    n = max(f["neglected_leads"] for f in bg.values())
    print(f"days {days}: background/unthrottled worst seed: touches {t:.2f}×, unsubscribes {u:.2f}×; background neglected max {n}")
PY
