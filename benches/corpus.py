"""A flow log corpus with the repetition real VPCs have, for measuring volume reduction
(benches/volume.sh). Default-format (v2) records with a header line, gzip:

    python3 benches/corpus.py RECORDS OUT_DIR

writes OUT_DIR/object-NNN.log.gz, each a 10-minute object (10 capture windows of a
minute, about 20,000 records, as AWS delivers them for a busy VPC), RECORDS in all. A
VPC (10.0.0.0/16, 24 interfaces), per minute window:
- service traffic: 12 app instances call a database (5432) and a cache (6379) with many
  short connections (a new client port each), and each other's APIs (8080);
- load-balancer health checks to every app instance (8080), a new connection each time;
- DNS to the VPC resolver (UDP 53, a new client port per query) and NTP to the Amazon
  Time Sync Service (169.254.169.123, UDP 123 to 123);
- clients from the internet to the load balancer (443), accepted;
- egress from the app instances to public APIs (443) and S3;
- scans from the internet to random ports, rejected, and a few rejected internal probes;
- NODATA and SKIPDATA records of idle interfaces.
Every connection gives a record for each direction on the capturing interface.
"""
import gzip
import os
import random
import sys

N, OUT = int(sys.argv[1]), sys.argv[2]
rng = random.Random(11)
ACCOUNT = "123456789012"
ENIS = [f"eni-{rng.getrandbits(68):017x}" for _ in range(24)]
APPS = [f"10.0.1.{10 + i}" for i in range(12)]
DB, CACHE, LB, RESOLVER, NTP = "10.0.2.10", "10.0.2.20", "10.0.0.5", "10.0.0.2", "169.254.169.123"
PUBLIC_APIS = [f"52.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(40)]
CLIENTS = [f"{rng.choice((81, 92, 151, 185, 203))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(3000)]
T0 = 1_732_435_200


def eni_of(addr):
    return ENIS[hash(addr) % len(ENIS)] if addr.startswith("10.") else ENIS[0]


def connection(out, t, src, dst, sport, dport, proto, action="ACCEPT", reply=True, size=None):
    """Records of one connection: the request direction and (accepted) its reply."""
    packets = rng.randrange(1, 20)
    size = size or rng.randrange(40, 1500)
    eni = eni_of(src if src.startswith("10.") else dst)
    out.append(f"2 {ACCOUNT} {eni} {src} {dst} {sport} {dport} {proto} {packets} {packets * size} {t} {t + 60} {action} OK")
    if reply and action == "ACCEPT":
        rp = rng.randrange(1, 30)
        out.append(f"2 {ACCOUNT} {eni} {dst} {src} {dport} {sport} {proto} {rp} {rp * rng.randrange(40, 1500)} {t} {t + 60} ACCEPT OK")


def window(t):
    out = []
    eph = lambda: rng.randrange(32768, 61000)
    for app in APPS:
        for _ in range(rng.randrange(20, 40)):
            connection(out, t, app, DB, eph(), 5432, 6)
        for _ in range(rng.randrange(10, 30)):
            connection(out, t, app, CACHE, eph(), 6379, 6)
        for _ in range(rng.randrange(5, 15)):
            connection(out, t, app, rng.choice(APPS), eph(), 8080, 6)
        for _ in range(6):
            connection(out, t, LB, app, eph(), 8080, 6, size=120)
        for _ in range(rng.randrange(10, 25)):
            connection(out, t, app, RESOLVER, eph(), 53, 17, size=80)
        connection(out, t, app, NTP, 123, 123, 17, size=76)
        for _ in range(rng.randrange(2, 8)):
            connection(out, t, app, rng.choice(PUBLIC_APIS), eph(), 443, 6)
    for _ in range(rng.randrange(150, 250)):
        connection(out, t, rng.choice(CLIENTS), LB, rng.randrange(1024, 65535), 443, 6)
    for _ in range(rng.randrange(30, 60)):
        scanner = f"{rng.choice((45, 89, 193))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        connection(out, t, scanner, rng.choice(APPS + [LB]), rng.randrange(1024, 65535),
                   rng.choice((22, 23, 445, 3389, 1433, 5900, 8443, rng.randrange(1, 65535))), 6, "REJECT")
    for _ in range(rng.randrange(0, 4)):
        connection(out, t, rng.choice(APPS), DB, eph(), 22, 6, "REJECT")
    for eni in ENIS[-4:]:
        out.append(f"2 {ACCOUNT} {eni} - - - - - - - {t} {t + 60} - {rng.choice(('NODATA', 'SKIPDATA'))}")
    rng.shuffle(out)
    return out


os.makedirs(OUT, exist_ok=True)
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"
written, t, n = 0, T0, 0
while written < N:
    with gzip.open(os.path.join(OUT, f"object-{n:03}.log.gz"), "wt", compresslevel=6) as f:
        f.write(HEADER)
        for _ in range(10):
            for line in window(t):
                if written == N:
                    break
                f.write(line + "\n")
                written += 1
            t += 60
    n += 1
