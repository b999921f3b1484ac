//! Every filter the user configures, decided here: INTERNAL_CIDRS (drop records whose
//! source and destination are both internal), ACTIONS (keep only the listed actions),
//! FILTER (keep the records an expression holds true for; `expression`),
//! THREAT_INTEL_ONLY (keep only records with a threat-list match) and LOG_STREAM_PREFIX
//! (keep only the CloudWatch Logs streams named). A record a filter drops is counted by
//! the caller, never silently lost.

mod expression;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flowlog::{Field, FlowRecord};
pub use expression::Expression;

/// Parses a CIDR block (`10.0.0.0/8`, `fd00::/8`), the address masked to the prefix.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if !text.contains('/') {
        return Err(format!("'{text}' is not a CIDR block (address/length)"));
    }
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| format!("'{text}' is not a CIDR block (IPv4 or IPv6 address/length)"))
}

/// One INTERNAL_CIDRS entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Internal {
    Cidr(IpNet),
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
            parse_cidr(entry).map(Internal::Cidr)
        } else {
            Ok(Internal::TextPrefix(entry.to_string()))
        }
    }

    fn contains(&self, ip: IpAddr, text: &str) -> bool {
        match self {
            Internal::Cidr(cidr) => cidr.contains(&ip),
            Internal::TextPrefix(p) => text.starts_with(p.as_str()),
        }
    }
}

/// The configured filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub internal: Vec<Internal>,
    /// Actions to keep (upper case); empty keeps all.
    pub actions: Vec<String>,
    /// FILTER: records it is false for are dropped.
    pub expression: Option<Expression>,
    /// THREAT_INTEL_ONLY: records without a threat-list match are dropped.
    pub threat_matches_only: bool,
    /// LOG_STREAM_PREFIX: the CloudWatch Logs streams kept, by prefix; empty keeps all.
    pub log_streams: Vec<String>,
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Internal,
    Action,
    Expression,
    NoThreatMatch,
}

impl Filter {
    /// Parses INTERNAL_CIDRS (comma list), ACTIONS (comma list) and FILTER (an
    /// expression). An error names the variable and what is wrong.
    pub fn parse(
        internal_cidrs: Option<&str>,
        actions: Option<&str>,
        expression: Option<&str>,
    ) -> Result<Filter, (&'static str, String)> {
        let mut filter = Filter::default();
        for entry in internal_cidrs
            .unwrap_or("")
            .split(',')
            .filter(|e| !e.trim().is_empty())
        {
            filter
                .internal
                .push(Internal::parse(entry).map_err(|e| ("INTERNAL_CIDRS", e))?);
        }
        for action in actions
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let action = action.to_ascii_uppercase();
            if action != "ACCEPT" && action != "REJECT" {
                return Err(("ACTIONS", format!("'{action}' is not ACCEPT or REJECT")));
            }
            filter.actions.push(action);
        }
        if let Some(text) = expression.filter(|t| !t.trim().is_empty()) {
            filter.expression = Some(Expression::parse(text).map_err(|e| ("FILTER", e))?);
        }
        Ok(filter)
    }

    /// Whether the events of CloudWatch Logs stream `stream` are kept (LOG_STREAM_PREFIX);
    /// the others are acknowledged and counted as filtered.
    pub fn keeps_log_stream(&self, stream: &str) -> bool {
        self.log_streams.is_empty()
            || self
                .log_streams
                .iter()
                .any(|p| stream.starts_with(p.as_str()))
    }

    /// `Some(reason)` when a record kept by `check` is to be dropped for its `matches`
    /// threat-list matches (THREAT_INTEL_ONLY and none).
    pub fn check_threat_matches(&self, matches: usize) -> Option<Drop> {
        (self.threat_matches_only && matches == 0).then_some(Drop::NoThreatMatch)
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
        if let Some(expression) = &self.expression {
            if !expression.matches(rec) {
                return Some(Drop::Expression);
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
        let f = Filter::parse(Some("10.0.0.0/8, 172.16.0.0/12"), None, None).unwrap();
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
        let f = Filter::parse(Some("fd00::/8,192.168."), None, None).unwrap();
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
        let f = Filter::parse(None, Some("reject"), None).unwrap();
        assert_eq!(drops(&f, "1.1.1.1 2.2.2.2 ACCEPT"), Some(Drop::Action));
        assert_eq!(drops(&f, "1.1.1.1 2.2.2.2 REJECT"), None);
        assert_eq!(drops(&f, "- - -"), None);
    }

    #[test]
    fn bad_entries_name_the_variable() {
        assert_eq!(
            Filter::parse(Some("10.0.0.0/33"), None, None)
                .unwrap_err()
                .0,
            "INTERNAL_CIDRS"
        );
        assert!(Filter::parse(Some("10.0.0.x/8"), None, None).is_err());
        let (variable, message) = Filter::parse(None, Some("DROP"), None).unwrap_err();
        assert_eq!(variable, "ACTIONS");
        assert!(message.contains("DROP"));
    }
}
