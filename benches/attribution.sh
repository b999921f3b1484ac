#!/usr/bin/env bash
# What REJECT attribution costs, as a ratio measured in one run: `process` of a
# generated gzip file of default-format (v2) records, 15 % of them REJECTs, every flow
# random (its mirror rarely seen: most REJECTs are held to the end of the object), to
# /dev/null, pinned to one core, with REJECT_ATTRIBUTION=true and =false alternately.
#   benches/attribution.sh [RECORDS] [ROUNDS]     (default 1000000 records, 30 rounds)
#   BIN=path/to/flowlog-forwarder benches/attribution.sh ...
# Prints the median wall time and peak RSS of each, and the mean ratio of the pairs
# (this virtual machine's wall times move by 5-10 % between runs; the ratio of runs
# made one after the other moves less); BENCHMARKS.md keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ROUNDS=${2:-30}
OUT=bench-out
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
fi
INPUT="$OUT/v2-rejects-$N.log.gz"
if [ ! -f "$INPUT" ]; then
  python3 - "$N" "$INPUT" <<'PY'
import gzip, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
enis = [f"eni-{rng.getrandbits(68):017x}" for _ in range(64)]
with gzip.open(path, "wt", compresslevel=6) as f:
    f.write("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n")
    for i in range(n):
        src = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        dst = f"{rng.choice((52, 172, 198, 203))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if rng.random() < 0.5:
            src, dst = dst, src
        t = 1732435200 + i // 2000
        act = "REJECT" if rng.random() < 0.15 else "ACCEPT"
        proto = rng.choice((6, 6, 6, 17, 1))
        sp, dp = (0, 0) if proto == 1 else (rng.randrange(1024, 65536), rng.choice((22, 53, 80, 443, 3389, 8080)))
        pk = rng.randrange(1, 200)
        f.write(f"2 123456789012 {rng.choice(enis)} {src} {dst} {sp} {dp} {proto} {pk} {pk * rng.randrange(40, 1500)} {t} {t + 60} {act} OK\n")
PY
fi
echo "input: $INPUT ($(du -h "$INPUT" | cut -f1), $N records)"
python3 - "$BIN" "$INPUT" "$ROUNDS" <<'PY'
import statistics, subprocess, sys, time
binary, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def once(attribution):
    start = time.perf_counter()
    p = subprocess.run(["taskset", "-c", "0", "/usr/bin/time", "-f", "peak_rss_kb=%M", binary, "process", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env={"REJECT_ATTRIBUTION": attribution, "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - start
    rss = next(int(l.split("=")[1]) for l in p.stderr.splitlines() if l.startswith("peak_rss_kb="))
    return wall, rss
results = {"true": [], "false": []}
for _ in range(rounds):
    for a in ("false", "true"):
        results[a].append(once(a))
for a in ("false", "true"):
    walls = [w for w, _ in results[a]]
    rss = max(r for _, r in results[a])
    print(f"REJECT_ATTRIBUTION={a}: median {statistics.median(walls):.3f} s (min {min(walls):.3f}), peak RSS {rss // 1024} MB")
ratios = [t[0] / f[0] for t, f in zip(results["true"], results["false"])]
mean = statistics.mean(ratios)
error = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else 0.0
print(f"attribution costs {100 * (mean - 1):+.1f} % wall, mean of {len(ratios)} interleaved pairs "
      f"(standard error {100 * error:.1f} %; median {100 * (statistics.median(ratios) - 1):+.1f} %)")
PY
zcat "$INPUT" > /dev/null
/usr/bin/time -f "zcat of the same file: %e s" zcat "$INPUT" > /dev/null
