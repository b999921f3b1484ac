//! GeoIP (GEOIP_DATABASE, GEOIP_ASN_DATABASE): where a record's source and destination
//! addresses are, from MaxMind DB files (GeoIP2 / GeoLite2 City or Country, and ASN)
//! read with the `maxminddb` crate. The databases are loaded at cold start and read
//! again after GEOIP_TTL_SECONDS by `reload` (a broken reading keeps the working
//! database). Per unit, `GeoLookup` answers an address with its place and autonomous
//! system already written as document members (ECS `geo` and `as`, OCSF `location` and
//! the ASN's enrichment data), each database record decoded and written once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use crate::reload::{self, Parser, Reloadable, Reloaded};

/// The largest database read (GeoLite2-City is about 60 MB, GeoIP2-City about 130 MB).
pub const MAX_DATABASE_BYTES: u64 = 256 << 20;

/// A City or Country database (GEOIP_DATABASE).
pub struct PlaceDatabase(maxminddb::Reader<Vec<u8>>);

/// An ASN database (GEOIP_ASN_DATABASE).
pub struct AsnDatabase(maxminddb::Reader<Vec<u8>>);

/// Reads a MaxMind DB file whole (the reader needs all of it), never past
/// MAX_DATABASE_BYTES (checked by `reload` as it reads).
pub struct DatabaseParser {
    bytes: Vec<u8>,
}

impl DatabaseParser {
    /// The database read: its type (`database_type`) must contain one of `kinds`.
    fn open(self, kinds: &[&str]) -> Result<maxminddb::Reader<Vec<u8>>, String> {
        let reader = maxminddb::Reader::from_source(self.bytes)
            .map_err(|e| format!("not a MaxMind DB file: {e}"))?;
        let kind = &reader.metadata().database_type;
        if !kinds.iter().any(|k| kind.contains(k)) {
            return Err(format!(
                "its database type is '{kind}', not {}",
                kinds.join(" or ")
            ));
        }
        Ok(reader)
    }
}

fn too_large(size: u64) -> String {
    format!(
        "the database is over the {MAX_DATABASE_BYTES} bytes (256 MiB) a GeoIP database may have ({size} bytes read or declared)"
    )
}

/// How `reload` reads a kind of database: its variable and name in messages, and the
/// database types (`database_type` contains one) it takes.
macro_rules! reloadable_database {
    ($database:ident, $variable:literal, $what:literal, $kinds:expr) => {
        impl Parser<$database> for DatabaseParser {
            fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
                self.bytes.extend_from_slice(chunk);
                Ok(())
            }

            fn finish(self) -> Result<$database, String> {
                self.open(&$kinds).map($database)
            }
        }

        impl Reloadable for $database {
            const VARIABLE: &'static str = $variable;
            const WHAT: &'static str = $what;
            const TIMEOUT_VARIABLE: &'static str = "GEOIP_TIMEOUT_SECONDS";
            const MAX_BYTES: u64 = MAX_DATABASE_BYTES;
            type Parser = DatabaseParser;

            fn parser(_name: &str) -> DatabaseParser {
                DatabaseParser { bytes: Vec::new() }
            }

            fn too_large(size: u64) -> String {
                too_large(size)
            }

            fn describe(&self) -> String {
                let m = self.0.metadata();
                format!(
                    "{}, built at {} (Unix seconds)",
                    m.database_type, m.build_epoch
                )
            }
        }
    };
}

reloadable_database!(
    PlaceDatabase,
    "GEOIP_DATABASE",
    "GeoIP database",
    ["City", "Country"]
);
reloadable_database!(
    AsnDatabase,
    "GEOIP_ASN_DATABASE",
    "GeoIP ASN database",
    ["ASN"]
);

/// GEOIP_DATABASE and GEOIP_ASN_DATABASE (S3 URIs or paths), GEOIP_TTL_SECONDS and
/// GEOIP_TIMEOUT_SECONDS.
#[derive(Debug, Clone, Default)]
pub struct GeoIpSettings {
    pub database: Option<String>,
    pub asn_database: Option<String>,
    /// How long a database is used before it is read again.
    pub ttl: Duration,
    /// Longest one reading of a database may take.
    pub timeout: Duration,
}

impl GeoIpSettings {
    /// Whether a database is read from S3.
    pub fn needs_s3(&self) -> bool {
        [&self.database, &self.asn_database]
            .into_iter()
            .flatten()
            .any(|uri| uri.starts_with("s3://"))
    }
}

/// The databases the configuration names, loaded at cold start and read again after
/// GEOIP_TTL_SECONDS.
pub struct GeoIpSources {
    place: Option<Reloaded<PlaceDatabase>>,
    asn: Option<Reloaded<AsnDatabase>>,
}

impl GeoIpSources {
    /// The databases of GEOIP_DATABASE and GEOIP_ASN_DATABASE (`s3` reads those in
    /// S3); none when neither is set.
    pub fn new(
        settings: &GeoIpSettings,
        s3: Option<aws_sdk_s3::Client>,
    ) -> Result<Option<GeoIpSources>, String> {
        let place = match &settings.database {
            None => None,
            Some(uri) => Some(
                Reloaded::new(reload::Location::parse(uri)?, settings.ttl, s3.clone())
                    .with_load_timeout(settings.timeout),
            ),
        };
        let asn = match &settings.asn_database {
            None => None,
            Some(uri) => Some(
                Reloaded::new(reload::Location::parse(uri)?, settings.ttl, s3)
                    .with_load_timeout(settings.timeout),
            ),
        };
        Ok((place.is_some() || asn.is_some()).then_some(GeoIpSources { place, asn }))
    }

    /// The databases to use now (`Reloaded::current`: loaded, or read again when due,
    /// never past `deadline`).
    pub async fn current(&self, deadline: Option<Instant>) -> Result<GeoIp, String> {
        let place = match &self.place {
            None => None,
            Some(db) => Some(db.current(deadline).await?),
        };
        let asn = match &self.asn {
            None => None,
            Some(db) => Some(db.current(deadline).await?),
        };
        Ok(GeoIp { place, asn })
    }
}

/// The databases in use for one invocation or run.
#[derive(Clone, Default)]
pub struct GeoIp {
    pub place: Option<Arc<PlaceDatabase>>,
    pub asn: Option<Arc<AsnDatabase>>,
}

/// What is known of one address, written as document members.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub place: Option<Arc<Members>>,
    pub asn: Option<Arc<Members>>,
}

/// A database record written once for each schema: ECS members (`,"geo":{...}` or
/// `,"as":{...}`) and OCSF ones (`,"location":{...}`, or the ASN enrichment's
/// `"data":{...}`).
#[derive(Debug)]
pub struct Members {
    pub ecs: String,
    pub ocsf: String,
}

/// Most addresses remembered per unit: past them the memory is emptied.
const MAX_REMEMBERED: usize = 65_536;

/// GeoIP answers for one unit: each address looked up once, each database record
/// decoded and written once.
pub struct GeoLookup {
    databases: GeoIp,
    /// By address (IPv4 as IPv4-mapped IPv6), hashed with a key random per process.
    addresses: HashMap<u128, Located, RandomState>,
    places: HashMap<usize, Arc<Members>, RandomState>,
    asns: HashMap<usize, Arc<Members>, RandomState>,
}

impl GeoLookup {
    pub fn new(databases: GeoIp) -> GeoLookup {
        GeoLookup {
            databases,
            addresses: HashMap::default(),
            places: HashMap::default(),
            asns: HashMap::default(),
        }
    }

    /// Where `ip` is. Private, loopback, link-local and other special-purpose addresses
    /// are in no GeoIP database and are not looked up.
    pub fn locate(&mut self, ip: IpAddr) -> Located {
        if !is_global(ip) {
            return Located::default();
        }
        let key = match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        if let Some(known) = self.addresses.get(&key) {
            return known.clone();
        }
        if self.addresses.len() >= MAX_REMEMBERED {
            self.addresses.clear();
            self.places.clear();
            self.asns.clear();
        }
        let place = self.databases.place.as_ref().and_then(|db| {
            members_of(&db.0, ip, &mut self.places, |r: &PlaceRecord| {
                place_members(r)
            })
        });
        let asn =
            self.databases.asn.as_ref().and_then(|db| {
                members_of(&db.0, ip, &mut self.asns, |r: &AsnRecord| asn_members(r))
            });
        let located = Located { place, asn };
        self.addresses.insert(key, located.clone());
        located
    }
}

/// The members of `ip`'s record in `reader` (`write` writes them from the record), each
/// record decoded and written once (`written`, by its offset in the database).
fn members_of<'r, R: serde::Deserialize<'r>>(
    reader: &'r maxminddb::Reader<Vec<u8>>,
    ip: IpAddr,
    written: &mut HashMap<usize, Arc<Members>, RandomState>,
    write: impl FnOnce(&R) -> Option<Members>,
) -> Option<Arc<Members>> {
    let found = reader.lookup(ip).ok()?;
    let offset = found.offset()?;
    if let Some(members) = written.get(&offset) {
        return Some(members.clone());
    }
    let record = found.decode::<R>().ok()??;
    let members = Arc::new(write(&record)?);
    written.insert(offset, members.clone());
    Some(members)
}

/// Whether `ip` can be in a GeoIP database: not private, shared (100.64.0.0/10),
/// loopback, link-local, unspecified, reserved, broadcast or multicast.
fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240)
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_global(IpAddr::V4(v4)),
            None => {
                let first = a.segments()[0];
                !(a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// What is read of a City or Country record: only the members written (any other is
/// skipped, and a number of another width than MaxMind's is still read).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PlaceRecord<'a> {
    #[serde(borrow)]
    city: Named<'a>,
    #[serde(borrow)]
    continent: Named<'a>,
    #[serde(borrow)]
    country: Named<'a>,
    #[serde(borrow)]
    location: Location<'a>,
    #[serde(borrow)]
    postal: Postal<'a>,
    #[serde(borrow)]
    subdivisions: Vec<Named<'a>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Named<'a> {
    code: Option<&'a str>,
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Names<'a>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Names<'a> {
    en: Option<&'a str>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Location<'a> {
    latitude: Option<f64>,
    longitude: Option<f64>,
    time_zone: Option<&'a str>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Postal<'a> {
    code: Option<&'a str>,
}

/// What is read of an ASN record.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

/// A City or Country record as ECS `geo` (the members Elastic's geoip processor
/// writes) and OCSF `location`; none when it holds none of them.
fn place_members(city: &PlaceRecord<'_>) -> Option<Members> {
    let country_iso = city.country.iso_code;
    let subdivision = city.subdivisions.first();
    let region_iso = match (country_iso, subdivision.and_then(|s| s.iso_code)) {
        (Some(country), Some(region)) => Some(format!("{country}-{region}")),
        _ => None,
    };
    let location = match (city.location.latitude, city.location.longitude) {
        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((lat, lon)),
        _ => None,
    };
    let mut ecs = Members::object(",\"geo\":{");
    ecs.string("city_name", city.city.names.en);
    ecs.string("continent_name", city.continent.names.en);
    ecs.string("continent_code", city.continent.code);
    ecs.string("country_iso_code", country_iso);
    ecs.string("country_name", city.country.names.en);
    if let Some((lat, lon)) = location {
        ecs.member("location", &format!("{{\"lat\":{lat},\"lon\":{lon}}}"));
    }
    ecs.string("region_iso_code", region_iso.as_deref());
    ecs.string("region_name", subdivision.and_then(|s| s.names.en));
    ecs.string("postal_code", city.postal.code);
    ecs.string("timezone", city.location.time_zone);
    let mut ocsf = Members::object(",\"location\":{");
    ocsf.string("city", city.city.names.en);
    ocsf.string("continent", city.continent.names.en);
    ocsf.string("country", country_iso);
    // OCSF's region is the ISO 3166-2 subdivision code alone (at most three characters).
    ocsf.string("region", subdivision.and_then(|s| s.iso_code));
    if let Some((lat, lon)) = location {
        ocsf.member("coordinates", &format!("[{lon},{lat}]"));
    }
    ocsf.string("postal_code", city.postal.code);
    Some(Members {
        ecs: ecs.close()?,
        ocsf: ocsf.close()?,
    })
}

/// An ASN record as ECS `as` and the data of an OCSF enrichment.
fn asn_members(asn: &AsnRecord<'_>) -> Option<Members> {
    let number = asn.autonomous_system_number?;
    let mut ecs = Members::object(",\"as\":{");
    ecs.member("number", &number.to_string());
    if let Some(name) = asn.autonomous_system_organization {
        let mut organization = Members::object("{");
        organization.string("name", Some(name));
        if let Some(organization) = organization.close() {
            ecs.member("organization", &organization);
        }
    }
    let mut ocsf = Members::object("\"data\":{");
    ocsf.member("number", &number.to_string());
    ocsf.string("name", asn.autonomous_system_organization);
    Some(Members {
        ecs: ecs.close()?,
        ocsf: ocsf.close()?,
    })
}

/// A JSON object being written: its opening, then its members.
struct ObjectText {
    text: String,
    members: usize,
}

impl Members {
    fn object(opening: &str) -> ObjectText {
        ObjectText {
            text: opening.to_string(),
            members: 0,
        }
    }
}

impl ObjectText {
    /// A member whose value is JSON text already.
    fn member(&mut self, key: &str, json: &str) {
        if self.members > 0 {
            self.text.push(',');
        }
        self.members += 1;
        self.text.push('"');
        self.text.push_str(key);
        self.text.push_str("\":");
        self.text.push_str(json);
    }

    fn string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            let mut quoted = Vec::with_capacity(value.len() + 2);
            crate::json::write_str(&mut quoted, value);
            self.member(key, &String::from_utf8_lossy(&quoted));
        }
    }

    /// The object closed; none when it has no member.
    fn close(mut self) -> Option<String> {
        if self.members == 0 {
            return None;
        }
        self.text.push('}');
        Some(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_are_looked_up() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_global(private.parse().unwrap()), "{private}");
        }
        for global in ["203.0.113.9", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(is_global(global.parse().unwrap()), "{global}");
        }
    }

    #[test]
    fn members_are_valid_json_and_escaped() {
        let mut o = Members::object(",\"geo\":{");
        o.string("city_name", Some("Zürich \"Nord\""));
        o.string("empty", Some(""));
        o.member("location", "{\"lat\":1.5,\"lon\":-2}");
        let text = o.close().unwrap();
        let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", &text[1..])).unwrap();
        assert_eq!(v["geo"]["city_name"], "Zürich \"Nord\"");
        assert!(v["geo"].get("empty").is_none());
        assert!(Members::object("{").close().is_none());
    }
}
