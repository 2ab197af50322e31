//! `spec.clients`: where the connect string is published for clients
//! besides the controller's state directory (on AWS: an SSM parameter and
//! Route53 records), validated with field paths.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::Problems;

/// `spec.clients`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientsSpec {
    /// An SSM String parameter the controller keeps equal to the connect
    /// string (AWS only), e.g. `/zkop/prod/connect-string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
    /// Route53 records for the members and the cluster (AWS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53Spec>,
}

/// `spec.clients.route53`: `NAME` holds every serving member's address (one
/// A record, many values), `<server id>.NAME` each member's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route53Spec {
    /// The hosted zone (`Z...`), usually a private zone of the VPC.
    pub hosted_zone_id: String,
    /// The cluster's name in it, e.g. `zk.prod.internal`.
    pub name: String,
    /// The records' TTL in seconds (default 10: clients resolve again soon
    /// after a member changes).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    10
}

/// Where the connect string is published, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientsPolicy {
    /// The SSM parameter's name.
    pub ssm_parameter: Option<String>,
    /// The Route53 records.
    pub route53: Option<Route53Records>,
}

/// Route53 records, validated: the name without its trailing dot, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route53Records {
    /// The hosted zone id, without a `/hostedzone/` prefix.
    pub hosted_zone_id: String,
    /// The cluster's record name.
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
}

impl Route53Records {
    /// The record of the member with `server_id`.
    pub fn member_name(&self, server_id: u64) -> String {
        format!("{server_id}.{}", self.name)
    }
}

/// Whether `name` is a DNS name Route53 takes: labels of letters, digits
/// and `-`, 1 to 63 each, 253 in all.
fn dns_name_ok(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `spec.clients`; publishing needs an AWS fleet.
pub(crate) fn check_clients(p: &mut Problems, c: &Option<ClientsSpec>, aws: bool) -> ClientsPolicy {
    let Some(c) = c else {
        return ClientsPolicy::default();
    };
    if !aws && (c.ssm_parameter.is_some() || c.route53.is_some()) {
        p.add(
            "spec.clients",
            "ssmParameter and route53 need fleet.aws: a local cluster's connect string is in its state directory",
        );
    }
    if let Some(name) = &c.ssm_parameter {
        let ok = name.starts_with('/')
            && name.len() <= 1011
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "/_.-".contains(ch));
        if !ok {
            p.add(
                "spec.clients.ssmParameter",
                format!(
                    "must be an SSM parameter path (`/` then letters, digits, `/_.-`), got `{name}`"
                ),
            );
        }
    }
    let route53 = c.route53.as_ref().map(|r| {
        let zone = r.hosted_zone_id.trim_start_matches("/hostedzone/");
        if zone.is_empty() || zone.len() > 32 || !zone.chars().all(|ch| ch.is_ascii_alphanumeric())
        {
            p.add(
                "spec.clients.route53.hostedZoneId",
                format!(
                    "must be a hosted zone id (`Z...`), got `{}`",
                    r.hosted_zone_id
                ),
            );
        }
        let name = r.name.trim_end_matches('.').to_ascii_lowercase();
        if !dns_name_ok(&name) {
            p.add(
                "spec.clients.route53.name",
                format!(
                    "must be a DNS name (labels of letters, digits and `-`), got `{}`",
                    r.name
                ),
            );
        }
        p.range("spec.clients.route53.ttl", r.ttl, 1, 86_400);
        Route53Records {
            hosted_zone_id: zone.to_string(),
            name,
            ttl: r.ttl,
        }
    });
    ClientsPolicy {
        ssm_parameter: c.ssm_parameter.clone(),
        route53,
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_spec;

    fn aws(extra: &str) -> String {
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/aws-3.yaml"
        ))
        .unwrap();
        format!("{example}{extra}")
    }

    fn problems(text: &str) -> Vec<String> {
        match parse_spec(text) {
            Ok(_) => vec![],
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn route53_records_are_named_under_the_cluster_s_name() {
        let c = parse_spec(&aws(
            "  clients:\n    ssmParameter: /zkop/aws-3/connect-string\n    route53:\n      hostedZoneId: /hostedzone/Z0123ABC\n      name: ZK.prod.internal.\n",
        ))
        .unwrap();
        let r = c.clients.route53.unwrap();
        assert_eq!(
            (r.hosted_zone_id.as_str(), r.name.as_str(), r.ttl),
            ("Z0123ABC", "zk.prod.internal", 10)
        );
        assert_eq!(r.member_name(3), "3.zk.prod.internal");
        assert_eq!(
            c.clients.ssm_parameter.as_deref(),
            Some("/zkop/aws-3/connect-string")
        );
    }

    #[test]
    fn bad_publishing_targets_are_named_by_field() {
        let lines = problems(&aws(
            "  clients:\n    ssmParameter: connect string\n    route53:\n      hostedZoneId: \"\"\n      name: -bad-.internal\n      ttl: 0\n",
        ));
        for field in [
            "ssmParameter",
            "route53.hostedZoneId",
            "route53.name",
            "route53.ttl",
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("spec.clients.{field}: "))),
                "{field}: {lines:?}"
            );
        }
        let local = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/local-3.yaml"
        ))
        .unwrap();
        let lines = problems(&format!("{local}  clients:\n    ssmParameter: /x\n"));
        assert!(
            lines.iter().any(|l| l.starts_with("spec.clients: ")),
            "{lines:?}"
        );
    }
}
