//! Publishing where clients connect on AWS (`spec.clients`): an SSM String
//! parameter holding the connect string, and Route53 A records, one per
//! serving member (`<server id>.NAME`) and one for the cluster (`NAME`,
//! every serving member's address). The controller publishes before it acts
//! on the pass's step, so a member's record is gone before its instance is
//! terminated.

use std::collections::BTreeMap;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use zkop_spec::clients::{ClientsPolicy, Route53Records};

use crate::adapters::{FleetError, Published};

/// A Route 53 call that failed, named as Route 53's.
fn route53_failed(what: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Operation(format!("Route 53 {what}: {e}"))
}

/// An SSM call that failed, named as SSM's.
fn ssm_failed(what: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Operation(format!("SSM {what}: {e}"))
}

/// Pages of a zone's records read at most (300 records each).
const MAX_PAGES: usize = 20;

/// One change to a record: its name, its addresses, and whether it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// Delete (with the values it holds) rather than upsert.
    pub delete: bool,
    /// The record's name, without the trailing dot.
    pub name: String,
    /// Its addresses, sorted.
    pub values: Vec<String>,
}

/// Whether `name` is one of the cluster's records: `NAME` or `<id>.NAME`.
fn is_ours(r: &Route53Records, name: &str) -> bool {
    name == r.name
        || name
            .strip_suffix(&format!(".{}", r.name))
            .is_some_and(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
}

/// The changes that make the zone's A records (`current`: name -> sorted
/// addresses) say `want`: stale records deleted first, then upserts.
pub fn record_changes(
    r: &Route53Records,
    current: &BTreeMap<String, Vec<String>>,
    want: &Published,
) -> Vec<RecordChange> {
    let mut desired: BTreeMap<String, Vec<String>> = want
        .members
        .iter()
        .map(|(id, a)| (r.member_name(id.0), vec![a.clone()]))
        .collect();
    if !want.members.is_empty() {
        let mut all: Vec<String> = want.members.values().cloned().collect();
        all.sort();
        all.dedup();
        desired.insert(r.name.clone(), all);
    }
    let gone = current
        .iter()
        .filter(|(name, _)| is_ours(r, name) && !desired.contains_key(*name))
        .map(|(name, values)| RecordChange {
            delete: true,
            name: name.clone(),
            values: values.clone(),
        });
    let changed = desired
        .iter()
        .filter(|(name, values)| current.get(*name) != Some(values))
        .map(|(name, values)| RecordChange {
            delete: false,
            name: name.clone(),
            values: values.clone(),
        });
    gone.chain(changed).collect()
}

/// The zone's A records under the cluster's name: name -> sorted addresses.
async fn current_records(
    route53: &aws_sdk_route53::Client,
    r: &Route53Records,
) -> Result<BTreeMap<String, Vec<String>>, FleetError> {
    let mut out = BTreeMap::new();
    let mut next: Option<(String, RrType)> = Some((r.name.clone(), RrType::A));
    for _ in 0..MAX_PAGES {
        let Some((name, kind)) = next.take() else {
            break;
        };
        let page = route53
            .list_resource_record_sets()
            .hosted_zone_id(&r.hosted_zone_id)
            .start_record_name(name)
            .start_record_type(kind)
            .send()
            .await
            .map_err(|e| route53_failed("ListResourceRecordSets", super::describe(&e)))?;
        for set in page.resource_record_sets() {
            let name = set.name().trim_end_matches('.').to_ascii_lowercase();
            if set.r#type() == &RrType::A && is_ours(r, &name) {
                let mut values: Vec<String> = set
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect();
                values.sort();
                out.insert(name, values);
            }
        }
        if page.is_truncated() {
            next = page
                .next_record_name()
                .zip(page.next_record_type().cloned())
                .map(|(n, t)| (n.to_string(), t));
        }
    }
    Ok(out)
}

fn record_set(r: &Route53Records, c: &RecordChange) -> Result<ResourceRecordSet, FleetError> {
    let records = c
        .values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| route53_failed("ChangeResourceRecordSets", e.to_string()))?;
    ResourceRecordSet::builder()
        .name(&c.name)
        .r#type(RrType::A)
        .ttl(i64::from(r.ttl))
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| route53_failed("ChangeResourceRecordSets", e.to_string()))
}

/// Applies `changes` to the zone in one batch (all or nothing).
async fn apply(
    route53: &aws_sdk_route53::Client,
    r: &Route53Records,
    changes: &[RecordChange],
) -> Result<(), FleetError> {
    let mut batch = ChangeBatch::builder().comment("zkop: the cluster's serving members");
    for c in changes {
        let action = if c.delete {
            ChangeAction::Delete
        } else {
            ChangeAction::Upsert
        };
        let change = Change::builder()
            .action(action)
            .resource_record_set(record_set(r, c)?)
            .build()
            .map_err(|e| route53_failed("ChangeResourceRecordSets", e.to_string()))?;
        batch = batch.changes(change);
    }
    let batch = batch
        .build()
        .map_err(|e| route53_failed("ChangeResourceRecordSets", e.to_string()))?;
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&r.hosted_zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| route53_failed("ChangeResourceRecordSets", super::describe(&e)))?;
    Ok(())
}

/// Publishes `what` where `clients` says; describes each change made.
pub(super) async fn publish(
    ssm: &aws_sdk_ssm::Client,
    route53: &aws_sdk_route53::Client,
    clients: &ClientsPolicy,
    what: &Published,
) -> Result<Vec<String>, FleetError> {
    let mut done = Vec::new();
    if let Some(r) = &clients.route53 {
        let changes = record_changes(r, &current_records(route53, r).await?, what);
        if !changes.is_empty() {
            apply(route53, r, &changes).await?;
        }
        done.extend(changes.iter().map(|c| {
            if c.delete {
                format!("route53 {} removed", c.name)
            } else {
                format!("route53 {} = {}", c.name, c.values.join(","))
            }
        }));
    }
    // SSM refuses an empty value: while none serves the last string stays.
    if let Some(name) = &clients.ssm_parameter
        && !what.connect_string.is_empty()
    {
        ssm.put_parameter()
            .name(name)
            .value(&what.connect_string)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| ssm_failed("PutParameter", super::describe(&e)))?;
        done.push(format!("ssm {name} = {}", what.connect_string));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkop_spec::zk::ServerId;

    fn records() -> Route53Records {
        Route53Records {
            hosted_zone_id: "Z1".into(),
            name: "zk.internal".into(),
            ttl: 10,
        }
    }

    #[test]
    fn a_departed_member_s_record_is_deleted_before_the_others_change() {
        let r = records();
        let current: BTreeMap<String, Vec<String>> = [
            ("zk.internal", vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            ("1.zk.internal", vec!["10.0.0.1"]),
            ("2.zk.internal", vec!["10.0.0.2"]),
            ("3.zk.internal", vec!["10.0.0.3"]),
            // Not ours: left alone.
            ("api.zk.internal", vec!["10.0.0.9"]),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let want = Published {
            connect_string: String::new(),
            members: [(1, "10.0.0.1"), (2, "10.0.0.2"), (4, "10.0.0.4")]
                .into_iter()
                .map(|(i, a)| (ServerId(i), a.to_string()))
                .collect(),
        };
        let changes = record_changes(&r, &current, &want);
        let names: Vec<(bool, &str)> = changes
            .iter()
            .map(|c| (c.delete, c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (true, "3.zk.internal"),
                (false, "4.zk.internal"),
                (false, "zk.internal")
            ]
        );
        assert_eq!(changes[2].values, vec!["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
        // Nothing serving: every record of the cluster goes.
        let none = record_changes(&r, &current, &Published::default());
        assert_eq!(none.len(), 4);
        assert!(none.iter().all(|c| c.delete));
    }
}
