//! Every flow log field this crate knows: its name, its value type, and where its value
//! goes in the ECS document's `aws.vpcflow` object. Field names not listed here are
//! still accepted (see `Schema`); they pass through as strings.

/// The type a field's text must have. `-` (absent) is accepted for every type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text (ids, names, ARNs, enumerations AWS may extend).
    Text,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A TCP/UDP port, 0..=65535.
    Port,
    /// An IANA protocol number, 0..=255.
    Protocol,
    /// A non-negative integer counter or code (u64).
    Integer,
    /// Seconds since the Unix epoch.
    Timestamp,
}

macro_rules! fields {
    ($( $variant:ident => $name:literal, $kind:ident, $key:expr; )*) => {
        /// A known flow log field.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Field { $( $variant, )* }

        impl Field {
            /// Every known field, in declaration order (`Field as usize` indexes it).
            pub const ALL: &'static [Field] = &[ $( Field::$variant, )* ];
            /// Number of known fields.
            pub const COUNT: usize = Field::ALL.len();

            /// The name as AWS spells it in formats and headers (`pkt-srcaddr`).
            pub fn name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// The value type the text must have.
            pub fn kind(self) -> Kind {
                match self { $( Field::$variant => Kind::$kind, )* }
            }

            /// Where the raw value is kept in `aws.vpcflow`: a key, a nested
            /// `sublocation` key, or nowhere (the value lives in an ECS field only).
            pub fn vpcflow_key(self) -> VpcflowKey {
                match self { $( Field::$variant => $key, )* }
            }
        }
    };
}

impl Field {
    /// The largest value an integer field may have: what its output fields hold (ECS
    /// `long` and OCSF `long_t` are signed 64-bit; OCSF `integer_t`, where `tcp-flags`,
    /// `traffic-path` and the version go, is signed 32-bit).
    pub fn max_integer(self) -> u64 {
        match self {
            Field::TcpFlags | Field::TrafficPath | Field::EncryptionStatus | Field::Version => {
                i32::MAX as u64
            }
            _ => i64::MAX as u64,
        }
    }
}

/// Where a field's raw value is written inside `aws.vpcflow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpcflowKey {
    /// `aws.vpcflow.<key>`.
    Top(&'static str),
    /// `aws.vpcflow.sublocation.<key>`.
    Sublocation(&'static str),
    /// Not kept under `aws.vpcflow`: the value is fully represented by ECS fields
    /// (as the Elastic `aws.vpcflow` integration does).
    None,
}

use VpcflowKey::{None as Omit, Sublocation, Top};

fields! {
    // Version 2 (the default format, in its order).
    Version => "version", Integer, Top("version");
    AccountId => "account-id", Text, Top("account_id");
    InterfaceId => "interface-id", Text, Top("interface_id");
    SrcAddr => "srcaddr", Ip, Omit;
    DstAddr => "dstaddr", Ip, Omit;
    SrcPort => "srcport", Port, Omit;
    DstPort => "dstport", Port, Omit;
    Protocol => "protocol", Protocol, Omit;
    Packets => "packets", Integer, Omit;
    Bytes => "bytes", Integer, Omit;
    Start => "start", Timestamp, Omit;
    End => "end", Timestamp, Omit;
    Action => "action", Text, Top("action");
    LogStatus => "log-status", Text, Top("log_status");
    // Version 3.
    VpcId => "vpc-id", Text, Top("vpc_id");
    SubnetId => "subnet-id", Text, Top("subnet_id");
    InstanceId => "instance-id", Text, Top("instance_id");
    TcpFlags => "tcp-flags", Integer, Top("tcp_flags");
    Type => "type", Text, Top("type");
    PktSrcAddr => "pkt-srcaddr", Ip, Top("pkt_srcaddr");
    PktDstAddr => "pkt-dstaddr", Ip, Top("pkt_dstaddr");
    // Version 4.
    Region => "region", Text, Omit;
    AzId => "az-id", Text, Omit;
    SublocationType => "sublocation-type", Text, Sublocation("type");
    SublocationId => "sublocation-id", Text, Sublocation("id");
    // Version 5.
    PktSrcAwsService => "pkt-src-aws-service", Text, Top("pkt_src_service");
    PktDstAwsService => "pkt-dst-aws-service", Text, Top("pkt_dst_service");
    FlowDirection => "flow-direction", Text, Omit;
    TrafficPath => "traffic-path", Integer, Top("traffic_path");
    // Version 7 (Amazon ECS).
    EcsClusterArn => "ecs-cluster-arn", Text, Top("ecs_cluster_arn");
    EcsClusterName => "ecs-cluster-name", Text, Top("ecs_cluster_name");
    EcsContainerInstanceArn => "ecs-container-instance-arn", Text, Top("ecs_container_instance_arn");
    EcsContainerInstanceId => "ecs-container-instance-id", Text, Top("ecs_container_instance_id");
    EcsContainerId => "ecs-container-id", Text, Top("ecs_container_id");
    EcsSecondContainerId => "ecs-second-container-id", Text, Top("ecs_second_container_id");
    EcsServiceName => "ecs-service-name", Text, Top("ecs_service_name");
    EcsTaskDefinitionArn => "ecs-task-definition-arn", Text, Top("ecs_task_definition_arn");
    EcsTaskArn => "ecs-task-arn", Text, Top("ecs_task_arn");
    EcsTaskId => "ecs-task-id", Text, Top("ecs_task_id");
    // Version 8.
    RejectReason => "reject-reason", Text, Top("reject_reason");
    // Versions 9 and 10.
    ResourceId => "resource-id", Text, Top("resource_id");
    EncryptionStatus => "encryption-status", Integer, Top("encryption_status");
    // Version 11 (next hop and interface type).
    InterfaceType => "interface-type", Text, Top("interface_type");
    NextHopInterfaceId => "next-hop-interface-id", Text, Top("next_hop_interface_id");
    NextHopSubnetId => "next-hop-subnet-id", Text, Top("next_hop_subnet_id");
    NextHopAzId => "next-hop-az-id", Text, Top("next_hop_az_id");
    NextHopVpcId => "next-hop-vpc-id", Text, Top("next_hop_vpc_id");
    NextHopInterfaceType => "next-hop-interface-type", Text, Top("next_hop_interface_type");
    // Transit Gateway flow logs.
    ResourceType => "resource-type", Text, Top("resource_type");
    TgwId => "tgw-id", Text, Top("tgw_id");
    TgwAttachmentId => "tgw-attachment-id", Text, Top("tgw_attachment_id");
    TgwSrcVpcAccountId => "tgw-src-vpc-account-id", Text, Top("tgw_src_vpc_account_id");
    TgwDstVpcAccountId => "tgw-dst-vpc-account-id", Text, Top("tgw_dst_vpc_account_id");
    TgwSrcVpcId => "tgw-src-vpc-id", Text, Top("tgw_src_vpc_id");
    TgwDstVpcId => "tgw-dst-vpc-id", Text, Top("tgw_dst_vpc_id");
    TgwSrcSubnetId => "tgw-src-subnet-id", Text, Top("tgw_src_subnet_id");
    TgwDstSubnetId => "tgw-dst-subnet-id", Text, Top("tgw_dst_subnet_id");
    TgwSrcEni => "tgw-src-eni", Text, Top("tgw_src_eni");
    TgwDstEni => "tgw-dst-eni", Text, Top("tgw_dst_eni");
    TgwSrcAzId => "tgw-src-az-id", Text, Top("tgw_src_az_id");
    TgwDstAzId => "tgw-dst-az-id", Text, Top("tgw_dst_az_id");
    TgwPairAttachmentId => "tgw-pair-attachment-id", Text, Top("tgw_pair_attachment_id");
    PacketsLostNoRoute => "packets-lost-no-route", Integer, Top("packets_lost_no_route");
    PacketsLostBlackhole => "packets-lost-blackhole", Integer, Top("packets_lost_blackhole");
    PacketsLostMtuExceeded => "packets-lost-mtu-exceeded", Integer, Top("packets_lost_mtu_exceeded");
    PacketsLostTtlExpired => "packets-lost-ttl-expired", Integer, Top("packets_lost_ttl_expired");
}

impl Field {
    /// Looks a field up by name. Accepts the AWS spelling (`log-status`) and the
    /// underscore spelling used by Parquet columns and JSON records (`log_status`).
    pub fn from_name(name: &str) -> Option<Field> {
        if name.contains('_') {
            let hyphenated = name.replace('_', "-");
            return Field::ALL.iter().copied().find(|f| f.name() == hyphenated);
        }
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// The AWS default (version 2) format, in order.
pub const DEFAULT_FORMAT: &[Field] = &[
    Field::Version,
    Field::AccountId,
    Field::InterfaceId,
    Field::SrcAddr,
    Field::DstAddr,
    Field::SrcPort,
    Field::DstPort,
    Field::Protocol,
    Field::Packets,
    Field::Bytes,
    Field::Start,
    Field::End,
    Field::Action,
    Field::LogStatus,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(Field::from_name(f.name()), Some(*f));
            assert_eq!(Field::from_name(&f.name().replace('-', "_")), Some(*f));
        }
        assert_eq!(Field::from_name("no-such-field"), None);
    }
}
