#!/usr/bin/env bash
# Issue 12's guard by hand: the starter business exactly as `tend init` writes it, one
# year, every `[congestion]` mechanism at 0, seeds 1–8; prints per seed the jobs
# completed and revenue of background and of unthrottled, then their sums. With
# congestion off flooding must not lose to the pacer (summed over seeds; one seed's sign
# is a job or two of chance when the pacer keeps the team as busy as flooding does).
# Usage: scripts/no-congestion.sh [OUT]; TEND=/path/to/tend runs that binary instead of
# building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-no-congestion}")"
if [[ -z "${TEND:-}" ]]; then
  cargo build --release -p tend >/dev/null
  TEND="${CARGO_TARGET_DIR:-$PWD/target}/release/tend"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$TEND" init "$work/biz" >/dev/null
python3 - "$work/biz/scenario.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
head, section, rest = text.partition("\n[congestion]\n")
body, _, tail = rest.partition("\n[")
body = re.sub(r"^([a-z_]+) = .*$", r"\1 = 0.0", body, flags=re.M)
open(path, "w").write(head + section + body + ("\n[" + tail if tail else ""))
PY
mkdir -p "$out"
for seed in 1 2 3 4 5 6 7 8; do
  "$TEND" simulate "$work/biz/scenario.toml" --out "$out/s$seed" --seed "$seed" >/dev/null 2>&1
done
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
sums = {"background": [0, 0.0], "unthrottled": [0, 0.0]}
print("| seed | background: jobs | unthrottled: jobs | background: revenue | unthrottled: revenue |")
print("|--:|--:|--:|--:|--:|")
for seed in range(1, 9):
    s = json.loads((out / f"s{seed}" / "summary.json").read_text())["strategies"]
    b, u = s["background"], s["unthrottled"]
    for name, fig in (("background", b), ("unthrottled", u)):
        sums[name][0] += fig["work_done"]
        sums[name][1] += fig["revenue"]
    print(f"| {seed} | {b['work_done']} | {u['work_done']} | {b['revenue']:,.0f} | {u['revenue']:,.0f} |")
print(f"| sum | {sums['background'][0]} | {sums['unthrottled'][0]} | {sums['background'][1]:,.0f} | {sums['unthrottled'][1]:,.0f} |")
PY
