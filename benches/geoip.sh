#!/usr/bin/env bash
# What GeoIP costs, in instructions (callgrind): `process` of the first 200,000 records
# of the whole-process corpus (v5; every public address distinct, so each is looked up
# in both databases), to /dev/null, without and with GEOIP_DATABASE and
# GEOIP_ASN_DATABASE. The databases are generated with mmdb-writer (pip install
# mmdb-writer): 200,000 random /24 networks each, over 3,000 City and 2,000 ASN
# records, IPv6 databases answering IPv4 as MaxMind's do.
#   benches/geoip.sh      BIN=path/to/flowlog-forwarder benches/geoip.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench-out
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
fi
CORPUS="$OUT/flows-200000.log.gz"
[ -f "$CORPUS" ] || { echo "run benches/process.sh first (it writes $CORPUS)"; exit 1; }
zcat "$CORPUS" > "$OUT/flows-200000.log"
for kind in city asn; do
  [ -f "$OUT/bench-$kind.mmdb" ] && continue
  python3 - "$kind" "$OUT/bench-$kind.mmdb" <<'PY'
import random, sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
kind, out = sys.argv[1], sys.argv[2]
rng = random.Random(5)
if kind == "city":
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"], description="bench", int_type="u32")
    records = [{"city": {"names": {"en": f"City {i}", "de": f"Stadt {i}"}}, "continent": {"code": "EU", "names": {"en": "Europe"}},
                "country": {"iso_code": "DE", "names": {"en": "Germany"}},
                "location": {"latitude": rng.uniform(-80, 80), "longitude": rng.uniform(-170, 170), "time_zone": "Europe/Berlin"},
                "postal": {"code": str(10000 + i)}, "subdivisions": [{"iso_code": "BE", "names": {"en": "Berlin"}}]} for i in range(3000)]
else:
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN", languages=["en"], description="bench", int_type="u32")
    records = [{"autonomous_system_number": 64512 + i, "autonomous_system_organization": f"Org {i}"} for i in range(2000)]
seen = set()
for _ in range(200000):
    a = rng.randrange(1, 224)
    if a in (10, 100, 127, 172, 192):
        continue
    net = f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
    if net not in seen:
        seen.add(net)
        w.insert_network(IPSet([net]), rng.choice(records))
w.to_db_file(out)
PY
done
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" process "$OUT/flows-200000.log" 2>&1 >/dev/null \
    | sed -n 's/.*I *refs: *//p'
}
echo "without GeoIP: $(count "$BIN") instructions"
echo "with GeoIP:    $(GEOIP_DATABASE=$OUT/bench-city.mmdb GEOIP_ASN_DATABASE=$OUT/bench-asn.mmdb count "$BIN") instructions"
