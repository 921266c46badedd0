#!/usr/bin/env bash
# Runs each benchmark twice in one session: once from a checkout of an earlier
# revision (its own tree and .venv), once from this tree, interleaved, so that
# "before" and "after" figures share the machine's load.  Usage:
#   bench/compare.sh REV [bench_name ...]      e.g. bench/compare.sh 326f5a9 bench_gateway
# The earlier checkout is made (once) as a git worktree under ${BENCH_BASE_DIR:-/tmp/bordergate-bench-base-REV}.
# Output: bench-compare-REV.log in this tree, and each run's closing lines on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/compare.sh REV [bench_name ...]}; shift
base=${BENCH_BASE_DIR:-/tmp/bordergate-bench-base-$rev}
if [ ! -d "$base" ]; then
  git worktree add --detach "$base" "$rev" >/dev/null
fi
if [ ! -x "$base/.venv/bin/python" ]; then
  python3.11 -m venv "$base/.venv"
  "$base/.venv/bin/pip" install --quiet -e "$base[dev]"
fi
benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
  for f in bench/bench_*.py; do benches+=("$(basename "$f" .py)"); done
fi
out="bench-compare-$rev.log"
: > "$out"
for b in "${benches[@]}"; do
  for side in before after; do
    if [ "$side" = before ]; then dir=$base; else dir=$PWD; fi
    [ -f "$dir/bench/$b.py" ] || { echo "== $b ($side): absent" | tee -a "$out"; continue; }
    echo "== $b ($side, $(git -C "$dir" rev-parse --short HEAD))" | tee -a "$out"
    (cd "$dir" && .venv/bin/python "bench/$b.py") >>"$out" 2>&1 || echo "   exit $?" | tee -a "$out"
    tail -n 8 "$out" | sed 's/^/   /'
  done
done
echo "full output: $out"
