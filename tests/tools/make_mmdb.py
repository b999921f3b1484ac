"""Writes a small MaxMind DB file with mmdb-writer, for the GeoIP tests.

    python3 tests/tools/make_mmdb.py KIND OUT      (KIND: city | country | asn)

city: GeoLite2-City records for 203.0.113.0/24 (Sydney, with a subdivision, postal code
and coordinates) and 2001:db8:1::/48 (Zurich); country: GeoLite2-Country records for
203.0.113.0/24 (Australia) only; asn: GeoLite2-ASN records for 203.0.113.0/24 (AS64500)
and 2001:db8:1::/48 (AS64501). IPv6 databases that also answer IPv4, as MaxMind's.
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

KIND, OUT = sys.argv[1], sys.argv[2]

OCEANIA = {"code": "OC", "geoname_id": 6255151, "names": {"en": "Oceania", "de": "Ozeanien"}}
EUROPE = {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}}
AUSTRALIA = {"iso_code": "AU", "geoname_id": 2077456, "names": {"en": "Australia"}}
SWITZERLAND = {"iso_code": "CH", "geoname_id": 2658434, "names": {"en": "Switzerland"}}

if KIND == "city":
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City",
                        languages=["en"], description="test city", int_type="u32")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {
        "city": {"geoname_id": 2147714, "names": {"en": "Sydney"}},
        "continent": OCEANIA,
        "country": AUSTRALIA,
        "location": {"latitude": -33.8688, "longitude": 151.2093, "time_zone": "Australia/Sydney",
                     "accuracy_radius": 20},
        "postal": {"code": "2000"},
        "subdivisions": [{"iso_code": "NSW", "names": {"en": "New South Wales"}}],
    })
    writer.insert_network(IPSet(["2001:db8:1::/48"]), {
        "city": {"names": {"en": "Zürich"}},
        "continent": EUROPE,
        "country": SWITZERLAND,
        "location": {"latitude": 47.3769, "longitude": 8.5417},
        "subdivisions": [{"iso_code": "ZH", "names": {"en": "Zurich"}}],
    })
elif KIND == "country":
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
                        languages=["en"], description="test country", int_type="u32")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"continent": OCEANIA, "country": AUSTRALIA})
elif KIND == "asn":
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN",
                        languages=["en"], description="test asn", int_type="u32")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {
        "autonomous_system_number": 64500,
        "autonomous_system_organization": "Example Net \"AU\"",
    })
    writer.insert_network(IPSet(["2001:db8:1::/48"]), {
        "autonomous_system_number": 64501,
        "autonomous_system_organization": "Beispiel AG",
    })
else:
    sys.exit(f"unknown kind {KIND}")
writer.to_db_file(OUT)
