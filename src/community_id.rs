//! Community ID v1 (seed 0): the flow hash shared by Zeek, Suricata and Elastic, so
//! that both directions of a flow carry the same `network.community_id`.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::flowlog::FlowRecord;
use crate::json::Out;

/// Community ID v1 (seed 0) of the record's flow, when addresses and protocol exist
/// (and ports, for the protocols that have them).
pub fn community_id(rec: &FlowRecord<'_>) -> Option<CommunityId> {
    let (src, dst, proto) = (rec.srcaddr?, rec.dstaddr?, rec.protocol?);
    let ports = match proto {
        6 | 17 | 132 | 1 | 58 => Some((rec.srcport?, rec.dstport?)),
        _ => None,
    };
    Some(community_id_v1(src, dst, proto, ports))
}

/// Community ID v1 with seed 0, per the Community ID specification: ICMP and ICMPv6
/// type/code take the place of ports (with request/reply pairing); the endpoints are
/// ordered so that both directions of a flow hash alike.
pub fn community_id_v1(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> CommunityId {
    let (mut sa, mut da) = (src, dst);
    let mut ports = ports;
    let mut one_way = false;
    if let Some((sp, dp)) = ports {
        let pair = match proto {
            1 => icmp_reply_type(sp),
            58 => icmp6_reply_type(sp),
            _ => Some(dp),
        };
        match pair {
            Some(mapped) => ports = Some((sp, mapped)),
            None => one_way = true,
        }
    }
    let (sp, dp) = ports.unwrap_or((0, 0));
    // IPv4 before IPv6, then by address bytes: `IpAddr`'s own order.
    let ordered = sa < da || (sa == da && sp < dp);
    let (sp, dp) = if one_way || ordered {
        (sp, dp)
    } else {
        std::mem::swap(&mut sa, &mut da);
        (dp, sp)
    };
    // seed (0), source and destination addresses, protocol, padding, ports: at most
    // 2 + 16 + 16 + 2 + 4 bytes, hashed in one call.
    let mut message = [0u8; 40];
    let mut n = 2;
    for addr in [sa, da] {
        match addr {
            IpAddr::V4(v4) => {
                message[n..n + 4].copy_from_slice(&v4.octets());
                n += 4;
            }
            IpAddr::V6(v6) => {
                message[n..n + 16].copy_from_slice(&v6.octets());
                n += 16;
            }
        }
    }
    message[n] = proto;
    n += 2;
    if ports.is_some() {
        message[n..n + 2].copy_from_slice(&sp.to_be_bytes());
        message[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
        n += 4;
    }
    CommunityId(Sha1::digest(&message[..n]).into())
}

/// A Community ID v1: the flow's SHA-1 digest, written as `1:` and its 28 base64
/// characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; 20]);

impl CommunityId {
    /// Appends the ID as a JSON string, encoded straight into `out`.
    pub(crate) fn write_json(&self, out: &mut Out<'_>) {
        let buf = out.slot(32);
        buf[..3].copy_from_slice(b"\"1:");
        buf[31] = b'"';
        // 20 bytes encode to exactly 28 base64 characters.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(self.0, &mut buf[3..31]);
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("1:")?;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl PartialEq<&str> for CommunityId {
    fn eq(&self, other: &&str) -> bool {
        let digest = other
            .strip_prefix("1:")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        digest.as_deref() == Some(&self.0[..])
    }
}

/// The ICMP type answering type `t` (echo reply for echo request, and back).
pub(crate) fn icmp_reply_type(t: u16) -> Option<u16> {
    Some(match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// `icmp_reply_type` for ICMPv6.
pub(crate) fn icmp6_reply_type(t: u16) -> Option<u16> {
    Some(match t {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_matches_published_vectors() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Elastic aws.vpcflow integration pipeline test expectations.
        assert_eq!(
            community_id_v1(
                ip("89.160.20.156"),
                ip("89.160.20.156"),
                6,
                Some((20641, 22))
            ),
            "1:CEGBlG6oEeW2Y5LLdr9GONITz00="
        );
        assert_eq!(
            community_id_v1(
                ip("89.160.20.156"),
                ip("10.200.0.0"),
                17,
                Some((50041, 33004))
            ),
            "1:+zLdyx7gcy2L5ERP4Je5AZMgl3A="
        );
        assert_eq!(
            community_id_v1(ip("1.128.0.0"), ip("2a02:cf40::"), 6, Some((39464, 22))),
            "1:yMxrbWtpAzdDF0dFnvIBRb/Ys5c="
        );
        assert_eq!(
            community_id_v1(ip("175.16.199.0"), ip("67.43.156.0"), 17, Some((56846, 80))),
            "1:KuA+xnOVKgXK3R+gM5tXdyjdQLc="
        );
        // Both directions hash alike.
        assert_eq!(
            community_id_v1(ip("10.0.0.1"), ip("10.0.0.2"), 6, Some((1000, 80))),
            community_id_v1(ip("10.0.0.2"), ip("10.0.0.1"), 6, Some((80, 1000)))
        );
        assert_eq!(
            community_id_v1(ip("10.0.0.1"), ip("10.0.0.2"), 1, Some((8, 0))),
            community_id_v1(ip("10.0.0.2"), ip("10.0.0.1"), 1, Some((0, 0)))
        );
    }
}
