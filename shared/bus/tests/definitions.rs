//! `deploy/rabbitmq/definitions.json` must declare exactly the topology the code declares
//! (`amqp.rs`, `declare_on`): a broker pre-loaded from that file and a worker declaring its
//! queues must agree, or RabbitMQ refuses the worker's `queue.declare` with
//! PRECONDITION_FAILED. No services needed; `deploy/rabbitmq/check-import.sh` checks that a
//! real broker accepts the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use sightline_bus::topology::{
    DEAD_LETTER_EXCHANGE, DELIVERY_LIMIT, EXCHANGE, dead_letter_queue, retry_queue, work_queue,
};
use sightline_messages::STAGES;

const VHOST: &str = "/";

fn definitions() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/definitions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn list<'a>(defs: &'a Value, key: &str) -> &'a [Value] {
    defs.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("definitions.json has no `{key}` array"))
}

fn field<'a>(obj: &'a Value, key: &str) -> &'a Value {
    obj.get(key).unwrap_or_else(|| panic!("{obj} has no `{key}`"))
}

fn string(obj: &Value, key: &str) -> String {
    field(obj, key).as_str().unwrap_or_else(|| panic!("`{key}` of {obj} is not a string")).to_owned()
}

/// The name of `obj`, an exchange or queue (`what`) that must be durable and not auto-deleted.
/// The entries of `section` (`exchanges`, `queues`) by name, each checked durable and declared once.
fn declared<'a>(defs: &'a Value, section: &str, what: &str) -> BTreeMap<String, &'a Value> {
    let mut found = BTreeMap::new();
    for obj in list(defs, section) {
        let name = string(obj, "name");
        assert_eq!(field(obj, "durable"), &json!(true), "{what} {name} must be durable");
        assert_eq!(field(obj, "auto_delete"), &json!(false), "{what} {name}");
        assert!(found.insert(name.clone(), obj).is_none(), "{what} {name} declared twice");
    }
    found
}

/// The arguments `declare_on` passes, per queue name. Keep in step with `amqp.rs`.
fn expected_queues() -> BTreeMap<String, Value> {
    let mut queues = BTreeMap::new();
    for stage in STAGES {
        queues.insert(
            work_queue(stage),
            json!({
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": stage,
                "x-delivery-limit": DELIVERY_LIMIT,
            }),
        );
        queues.insert(
            retry_queue(stage),
            json!({
                "x-queue-type": "classic",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": work_queue(stage),
            }),
        );
        queues.insert(dead_letter_queue(stage), json!({ "x-queue-type": "classic" }));
    }
    queues
}

/// (source, destination, routing key) of every binding `declare_on` makes.
fn expected_bindings() -> BTreeSet<(String, String, String)> {
    STAGES
        .iter()
        .flat_map(|stage| {
            [
                (EXCHANGE.to_owned(), work_queue(stage), (*stage).to_owned()),
                (DEAD_LETTER_EXCHANGE.to_owned(), dead_letter_queue(stage), (*stage).to_owned()),
            ]
        })
        .collect()
}

#[test]
fn declares_only_the_default_vhost() {
    let defs = definitions();
    let vhosts: Vec<String> = list(&defs, "vhosts").iter().map(|v| string(v, "name")).collect();
    assert_eq!(vhosts, [VHOST]);
    for key in ["exchanges", "queues", "bindings", "policies"] {
        for obj in list(&defs, key) {
            assert_eq!(string(obj, "vhost"), VHOST, "{key}: {obj}");
        }
    }
}

#[test]
fn exchanges_match_the_code() {
    let defs = definitions();
    let found = declared(&defs, "exchanges", "exchange");
    for (name, ex) in &found {
        assert_eq!(string(ex, "type"), "direct", "exchange {name}");
        assert_eq!(field(ex, "internal"), &json!(false), "exchange {name}");
        assert_eq!(field(ex, "arguments"), &json!({}), "exchange {name}: the code passes no arguments");
    }
    let expected: BTreeSet<String> = [EXCHANGE, DEAD_LETTER_EXCHANGE].map(str::to_owned).into();
    assert_eq!(found.into_keys().collect::<BTreeSet<_>>(), expected);
}

#[test]
fn queues_match_the_code() {
    let defs = definitions();
    let found: BTreeMap<String, &Value> =
        declared(&defs, "queues", "queue").into_iter().map(|(name, q)| (name, field(q, "arguments"))).collect();
    let expected = expected_queues();
    let missing: Vec<_> = expected.keys().filter(|n| !found.contains_key(*n)).collect();
    let extra: Vec<_> = found.keys().filter(|n| !expected.contains_key(*n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "queues missing from the file: {missing:?}; not declared by the code: {extra:?}"
    );
    for (name, args) in &expected {
        // Value equality is exact: 10 and "10" differ, and so do 10 and 10.0.
        assert_eq!(found[name], args, "arguments of queue {name}");
    }
}

#[test]
fn delivery_limit_is_an_integer() {
    // RabbitMQ reads a JSON integer as a `long` argument, which is what lapin sends
    // (LongLongInt); a string would be a `longstr` and fail the equivalence check.
    let defs = definitions();
    for q in list(&defs, "queues") {
        if let Some(limit) = field(q, "arguments").get("x-delivery-limit") {
            assert_eq!(limit.as_i64(), Some(DELIVERY_LIMIT), "x-delivery-limit of {}", string(q, "name"));
        }
    }
}

#[test]
fn bindings_match_the_code() {
    let defs = definitions();
    let mut found = BTreeSet::new();
    for b in list(&defs, "bindings") {
        assert_eq!(string(b, "destination_type"), "queue", "binding {b}");
        assert_eq!(field(b, "arguments"), &json!({}), "binding {b}");
        let key = (string(b, "source"), string(b, "destination"), string(b, "routing_key"));
        assert!(found.insert(key), "binding {b} declared twice");
    }
    let expected = expected_bindings();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "bindings missing from the file: {missing:?}; not made by the code: {extra:?}"
    );
}

#[test]
fn policies_cover_every_work_queue_and_leave_queue_arguments_alone() {
    let defs = definitions();
    let policies = list(&defs, "policies");
    // One pattern naming every stage, so a new stage that is missing from it fails here.
    let pattern = format!("^sightline\\.({})$", STAGES.join("|"));
    let work: Vec<&Value> = policies.iter().filter(|p| string(p, "pattern") == pattern).collect();
    assert_eq!(work.len(), 1, "expected one policy with pattern {pattern}");
    assert_eq!(string(work[0], "apply-to"), "queues");
    let timeout = field(work[0], "definition").get("consumer-timeout").and_then(Value::as_i64);
    // Above the slowest stage's drain deadline (cluster: 300 s) with a wide margin.
    assert!(timeout.is_some_and(|ms| ms >= 600_000), "consumer-timeout {timeout:?}");

    // Queue arguments already carry these; a policy must not be a second source of truth.
    const OWNED_BY_ARGUMENTS: [&str; 4] =
        ["dead-letter-exchange", "dead-letter-routing-key", "delivery-limit", "queue-type"];
    for p in policies {
        let definition: &Map<String, Value> =
            field(p, "definition").as_object().unwrap_or_else(|| panic!("policy {p}: definition is not an object"));
        for key in OWNED_BY_ARGUMENTS {
            assert!(
                !definition.contains_key(key),
                "policy {} sets {key}, which a queue argument already sets",
                string(p, "name")
            );
        }
    }
}

#[test]
fn carries_no_credentials() {
    // Users and permissions are provisioned with their secrets, never from this file.
    let defs = definitions();
    for key in ["users", "permissions", "topic_permissions"] {
        assert!(defs.get(key).is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)), "definitions.json has `{key}`");
    }
}
