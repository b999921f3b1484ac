//! Filters the user configured: INTERNAL_CIDRS (drop records whose source and
//! destination are both internal) and ACTIONS (keep only the listed actions). A record
//! a filter drops is counted by the caller, never silently lost.

use std::net::IpAddr;

use crate::flowlog::{Field, FlowRecord};

/// A CIDR block (`10.0.0.0/8`, `fd00::/8`), matched on the address value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/length`; the address is masked to the prefix.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not a CIDR block (address/length)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{text}': '{addr}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("'{text}': prefix length must be 0-{max}"))?;
        Ok(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network.is_ipv4() == ip.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// One INTERNAL_CIDRS entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Internal {
    Cidr(Cidr),
    /// A plain text prefix (`10.0.`), as Sumo Logic's VPC_CIDR_PREFIX.
    TextPrefix(String),
}

impl Internal {
    /// Parses an entry: with `/` a CIDR, without a plain string prefix.
    pub fn parse(entry: &str) -> Result<Internal, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("empty entry".to_string());
        }
        if entry.contains('/') {
            Cidr::parse(entry).map(Internal::Cidr)
        } else {
            Ok(Internal::TextPrefix(entry.to_string()))
        }
    }

    fn contains(&self, ip: IpAddr, text: &str) -> bool {
        match self {
            Internal::Cidr(cidr) => cidr.contains(ip),
            Internal::TextPrefix(p) => text.starts_with(p.as_str()),
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The configured filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub internal: Vec<Internal>,
    /// Actions to keep (upper case); empty keeps all.
    pub actions: Vec<String>,
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Internal,
    Action,
}

impl Filter {
    /// Parses INTERNAL_CIDRS (comma list) and ACTIONS (comma list).
    pub fn parse(internal_cidrs: Option<&str>, actions: Option<&str>) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for entry in internal_cidrs
            .unwrap_or("")
            .split(',')
            .filter(|e| !e.trim().is_empty())
        {
            filter
                .internal
                .push(Internal::parse(entry).map_err(|e| format!("INTERNAL_CIDRS: {e}"))?);
        }
        for action in actions
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let action = action.to_ascii_uppercase();
            if action != "ACCEPT" && action != "REJECT" {
                return Err(format!("ACTIONS: '{action}' is not ACCEPT or REJECT"));
            }
            filter.actions.push(action);
        }
        Ok(filter)
    }

    /// `Some(reason)` when the record is to be dropped.
    pub fn check(&self, rec: &FlowRecord<'_>) -> Option<Drop> {
        if !self.actions.is_empty() {
            // Records without an action (NODATA, SKIPDATA) are kept.
            if let Some(action) = rec.get(Field::Action) {
                if !self.actions.iter().any(|a| a == action) {
                    return Some(Drop::Action);
                }
            }
        }
        if !self.internal.is_empty() {
            if let (Some(src), Some(dst)) = (rec.srcaddr, rec.dstaddr) {
                let src_text = rec.get(Field::SrcAddr).unwrap_or_default();
                let dst_text = rec.get(Field::DstAddr).unwrap_or_default();
                let inside = |ip, text| self.internal.iter().any(|i| i.contains(ip, text));
                if inside(src, src_text) && inside(dst, dst_text) {
                    return Some(Drop::Internal);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::{parse_line, Schema};

    fn drops(filter: &Filter, line: &str) -> Option<Drop> {
        let schema = Schema::parse_format("srcaddr dstaddr action").unwrap();
        let mut spans = Vec::new();
        let rec = parse_line(line, &schema, &mut spans).unwrap();
        filter.check(&rec)
    }

    #[test]
    fn cidr_is_a_real_cidr_not_a_string_prefix() {
        let f = Filter::parse(Some("10.0.0.0/8, 172.16.0.0/12"), None).unwrap();
        assert_eq!(
            drops(&f, "10.1.2.3 172.31.255.255 ACCEPT"),
            Some(Drop::Internal)
        );
        // 172.32.x is outside 172.16.0.0/12 although it shares the text "172.".
        assert_eq!(drops(&f, "10.1.2.3 172.32.0.1 ACCEPT"), None);
        // 100.x starts with "10" but is not in 10.0.0.0/8.
        assert_eq!(drops(&f, "100.1.2.3 10.0.0.1 ACCEPT"), None);
        // Only one end inside: kept.
        assert_eq!(drops(&f, "10.1.2.3 8.8.8.8 ACCEPT"), None);
    }

    #[test]
    fn ipv6_and_text_prefixes() {
        let f = Filter::parse(Some("fd00::/8,192.168."), None).unwrap();
        assert_eq!(drops(&f, "fd12::1 fdff::2 ACCEPT"), Some(Drop::Internal));
        assert_eq!(drops(&f, "fe80::1 fd00::2 ACCEPT"), None);
        assert_eq!(
            drops(&f, "192.168.1.1 192.168.2.2 ACCEPT"),
            Some(Drop::Internal)
        );
        assert_eq!(
            drops(&f, "192.168.1.1 fd00::1 ACCEPT"),
            Some(Drop::Internal)
        );
    }

    #[test]
    fn actions() {
        let f = Filter::parse(None, Some("reject")).unwrap();
        assert_eq!(drops(&f, "1.1.1.1 2.2.2.2 ACCEPT"), Some(Drop::Action));
        assert_eq!(drops(&f, "1.1.1.1 2.2.2.2 REJECT"), None);
        assert_eq!(drops(&f, "- - -"), None);
    }

    #[test]
    fn bad_entries_name_the_variable() {
        assert!(Filter::parse(Some("10.0.0.0/33"), None)
            .unwrap_err()
            .contains("INTERNAL_CIDRS"));
        assert!(Filter::parse(Some("10.0.0.x/8"), None).is_err());
        assert!(Filter::parse(None, Some("DROP"))
            .unwrap_err()
            .contains("ACTIONS"));
    }
}
