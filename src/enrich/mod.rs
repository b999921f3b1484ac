//! ENI enrichment (ENRICH_ENI=true): the security groups, VPC, subnet and instance of a
//! record's network interface, and `network.direction` derived from the interface's
//! addresses and its VPC's CIDR blocks when the record has no `flow-direction`.
//!
//! Interfaces are looked up with ec2:DescribeNetworkInterfaces, many ids per call, and
//! their VPCs with ec2:DescribeVpcs (see `ec2`). Answers are cached across invocations for
//! ENRICH_ENI_TTL_SECONDS, "no such interface" too. A failed lookup (throttling, access
//! denied, timeout) is remembered for a short while and the records of those interfaces
//! go out unenriched (counted by the caller): enrichment never holds records back
//! beyond the EC2 client's retry budget.

mod ec2;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::filter::parse_cidr;
use ec2::{Ec2, NetworkInterface};

/// Interface ids per DescribeNetworkInterfaces call (EC2 accepts 200 values a filter).
const IDS_PER_CALL: usize = 200;
/// How long a failed lookup is remembered before it is tried again.
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Cached interfaces above which expired entries are swept.
const SWEEP_AT: usize = 20_000;

/// What is known of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// The instance it is attached to.
    pub instance_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Its private IPv4 addresses (primary and secondary) and its IPv6 addresses.
    pub addresses: Vec<IpAddr>,
    /// The IPv4 and IPv6 CIDR blocks of its VPC; empty when they are not known.
    pub vpc_cidrs: Vec<IpNet>,
}

impl Interface {
    /// The direction of a flow seen at this interface: `internal` when both ends are
    /// inside the VPC, `inbound` when the destination is this interface and the source
    /// is outside the VPC, `outbound` for the reverse. `None` for anything else (a
    /// flow through the interface to other hosts, unknown VPC blocks): never guessed.
    pub fn direction(&self, src: Option<IpAddr>, dst: Option<IpAddr>) -> Option<&'static str> {
        let (src, dst) = (src?, dst?);
        if self.vpc_cidrs.is_empty() {
            return None;
        }
        let in_vpc = |ip: IpAddr| self.vpc_cidrs.iter().any(|c| c.contains(&ip));
        let own = |ip: IpAddr| self.addresses.contains(&ip);
        match (in_vpc(src), in_vpc(dst)) {
            (true, true) => Some("internal"),
            (false, _) if own(dst) => Some("inbound"),
            (_, false) if own(src) => Some("outbound"),
            _ => None,
        }
    }
}

/// The cached answer for one interface id.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<Interface>),
    /// EC2 does not know it (deleted, another account), or it is not an interface id.
    NotFound,
    /// The lookup failed (throttled, access denied, timed out) or was not made.
    Failed,
}

/// A cached answer and when it expires.
struct Entry<T> {
    value: T,
    expires: Instant,
}

/// The CIDR blocks of a VPC.
type Blocks = Arc<Vec<IpNet>>;

/// Interface and VPC answers shared by every invocation of a Lambda instance.
pub struct EniCache {
    ec2: Ec2,
    ttl: Duration,
    interfaces: Mutex<HashMap<String, Entry<Lookup>>>,
    vpcs: Mutex<HashMap<String, Entry<Blocks>>>,
}

impl EniCache {
    /// A cache asking EC2 with the credentials and region of `aws`.
    pub fn from_sdk_config(aws: &aws_config::SdkConfig, ttl: Duration) -> EniCache {
        EniCache {
            ec2: Ec2::new(aws),
            ttl,
            interfaces: Mutex::new(HashMap::new()),
            vpcs: Mutex::new(HashMap::new()),
        }
    }

    /// EC2 requests made so far (DescribeNetworkInterfaces and DescribeVpcs pages).
    pub fn calls(&self) -> u64 {
        self.ec2.requests()
    }

    /// The cached answer for `id`; `Failed` when it was never looked up.
    pub fn get(&self, id: &str) -> Lookup {
        if !is_interface_id(id) {
            return Lookup::NotFound;
        }
        match lock(&self.interfaces).get(id) {
            Some(entry) => entry.value.clone(),
            None => Lookup::Failed,
        }
    }

    /// Looks up every interface of `ids` that is not cached or whose answer expired,
    /// 200 ids a call. Never fails: a failed call caches `Failed` for its ids.
    pub async fn prefetch<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let now = Instant::now();
        let wanted: Vec<String> = {
            let cached = lock(&self.interfaces);
            let mut seen = HashSet::new();
            ids.into_iter()
                .filter(|id| is_interface_id(id))
                .filter(|id| cached.get(*id).is_none_or(|e| e.expires <= now))
                .filter(|id| seen.insert(*id))
                .map(str::to_string)
                .collect()
        };
        for chunk in wanted.chunks(IDS_PER_CALL) {
            let answers = self.describe(chunk).await;
            let now = Instant::now();
            let mut cached = lock(&self.interfaces);
            match answers {
                Ok(mut found) => {
                    for id in chunk {
                        let value = match found.remove(id) {
                            Some(interface) => Lookup::Found(Arc::new(interface)),
                            None => Lookup::NotFound,
                        };
                        let expires = now + self.ttl;
                        cached.insert(id.clone(), Entry { value, expires });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, interfaces = chunk.len(),
                        "ENI lookup failed; their records are forwarded without enrichment");
                    let expires = now + FAILURE_TTL.min(self.ttl);
                    for id in chunk {
                        let value = Lookup::Failed;
                        cached.insert(id.clone(), Entry { value, expires });
                    }
                }
            }
            if cached.len() > SWEEP_AT {
                cached.retain(|_, e| e.expires > now);
            }
        }
    }

    /// The interfaces among `ids` that EC2 knows, with their VPCs' blocks.
    async fn describe(&self, ids: &[String]) -> Result<HashMap<String, Interface>, String> {
        let mut found: HashMap<String, Interface> = self
            .ec2
            .describe_network_interfaces(ids)
            .await?
            .into_iter()
            .map(|ni| (ni.id.clone(), interface_of(ni)))
            .collect();
        let vpc_ids: Vec<&str> = found
            .values()
            .filter_map(|i| i.vpc_id.as_deref())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let blocks = self.vpc_blocks(&vpc_ids).await?;
        for interface in found.values_mut() {
            if let Some(b) = interface.vpc_id.as_ref().and_then(|v| blocks.get(v)) {
                interface.vpc_cidrs = b.to_vec();
            }
        }
        Ok(found)
    }

    /// The CIDR blocks of `vpc_ids`, from the cache or DescribeVpcs.
    async fn vpc_blocks(&self, vpc_ids: &[&str]) -> Result<HashMap<String, Blocks>, String> {
        let now = Instant::now();
        let mut blocks = HashMap::new();
        let mut missing = Vec::new();
        {
            let cached = lock(&self.vpcs);
            for id in vpc_ids {
                match cached.get(*id) {
                    Some(entry) if entry.expires > now => {
                        blocks.insert(id.to_string(), entry.value.clone());
                    }
                    _ => missing.push(id.to_string()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(blocks);
        }
        for vpc in self.ec2.describe_vpcs(&missing).await? {
            let cidrs = vpc.cidr_blocks.iter().filter_map(|b| parse_cidr(b).ok());
            blocks.insert(vpc.id, Arc::new(cidrs.collect()));
        }
        let expires = Instant::now() + self.ttl;
        let mut cached = lock(&self.vpcs);
        for id in missing {
            // A VPC EC2 does not return has no known blocks: direction stays absent.
            let value = blocks.entry(id.clone()).or_default().clone();
            cached.insert(id, Entry { value, expires });
        }
        if cached.len() > SWEEP_AT {
            cached.retain(|_, e| e.expires > now);
        }
        Ok(blocks)
    }
}

/// `eni-` followed by hex digits: anything else is not looked up.
fn is_interface_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix("eni-")
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn interface_of(ni: NetworkInterface) -> Interface {
    let mut addresses: Vec<IpAddr> = Vec::new();
    for ip in ni.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    Interface {
        vpc_id: ni.vpc_id,
        subnet_id: ni.subnet_id,
        instance_id: ni.instance_id,
        security_group_ids: ni.group_ids,
        addresses,
        vpc_cidrs: Vec::new(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a cache that is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn direction_from_addresses_and_vpc_blocks() {
        let i = Interface {
            addresses: vec!["10.0.1.5".parse().unwrap(), "10.0.1.6".parse().unwrap()],
            vpc_cidrs: vec![
                parse_cidr("10.0.0.0/16").unwrap(),
                parse_cidr("2600:1f18::/56").unwrap(),
            ],
            ..Interface::default()
        };
        assert_eq!(i.direction(ip("8.8.8.8"), ip("10.0.1.6")), Some("inbound"));
        assert_eq!(i.direction(ip("10.0.1.5"), ip("1.1.1.1")), Some("outbound"));
        assert_eq!(
            i.direction(ip("10.0.1.5"), ip("10.0.9.9")),
            Some("internal")
        );
        assert_eq!(
            i.direction(ip("2600:1f18::1"), ip("10.0.1.5")),
            Some("internal")
        );
        // Neither end is the interface nor both inside: not guessed.
        assert_eq!(i.direction(ip("8.8.8.8"), ip("1.1.1.1")), None);
        assert_eq!(i.direction(ip("8.8.8.8"), ip("10.0.2.2")), None);
        assert_eq!(i.direction(None, ip("10.0.1.5")), None);
        let unknown_vpc = Interface {
            vpc_cidrs: Vec::new(),
            ..i
        };
        assert_eq!(unknown_vpc.direction(ip("8.8.8.8"), ip("10.0.1.6")), None);
    }

    #[test]
    fn only_interface_ids_are_looked_up() {
        assert!(is_interface_id("eni-0a1b2c3d4e5f67890"));
        assert!(!is_interface_id("eni-"));
        assert!(!is_interface_id("-"));
        assert!(!is_interface_id("eni-xyz"));
        assert!(!is_interface_id("tgw-attach-0123"));
        assert!(!is_interface_id(&format!("eni-{}", "a".repeat(100))));
    }
}
