//! `sightline dlq`: inspect, replay and purge dead letters.

use anyhow::{Context, bail};
use clap::Subcommand;
use sightline_bus::{AmqpBus, AmqpConfig, Bus, describe_failure};
use sightline_messages::{Envelope, STAGES, headers};
use sightline_runtime::CommonArgs;
use uuid::Uuid;

/// Dead-letter operations.
#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: id, source, failure kind, reason.
    List {
        /// Stage whose dead letters to list.
        stage: String,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one dead letter: reason, attempts, headers, decoded message.
    Show {
        /// Stage.
        stage: String,
        /// Message id (from `list`).
        id: Uuid,
    },
    /// Return dead letters to their stage's work queue (attempt reset, original failure kept).
    Replay {
        /// Stage.
        stage: String,
        /// Only these message ids (default: all).
        #[arg(long = "id")]
        ids: Vec<Uuid>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete every dead letter of a stage.
    Purge {
        /// Stage.
        stage: String,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Queue depths of every stage (ready, retrying, dead, consumers).
    Depth {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn check_stage(stage: &str) -> anyhow::Result<()> {
    if !STAGES.contains(&stage) {
        bail!("unknown stage {stage:?} (stages: {})", STAGES.join(", "));
    }
    Ok(())
}

fn summary(e: &Envelope) -> serde_json::Value {
    let m = &e.meta;
    serde_json::json!({
        "id": m.message_id,
        "job": m.correlation_id,
        "kind": m.kind,
        "item": m.item,
        "source": m.header(headers::SOURCE),
        "failure_kind": m.header(headers::FAILURE_KIND),
        "failed_stage": m.header(headers::FAILED_STAGE),
        "reason": m.header(headers::REASON),
        "attempt": m.attempt,
        "original_failure": m.header(headers::ORIGINAL_FAILURE),
    })
}

/// Runs a dlq subcommand against RabbitMQ.
pub async fn run(common: &CommonArgs, command: DlqCommand) -> anyhow::Result<i32> {
    let bus = AmqpBus::new(AmqpConfig::new(common.amqp_url.clone(), "sightline-cli"));
    bus.declare(&STAGES).await.context("connect to rabbitmq")?;
    match command {
        DlqCommand::List { stage, limit, json } => {
            check_stage(&stage)?;
            let letters = bus.dlq_list(&stage, limit).await?;
            if json {
                let v: Vec<_> = letters.iter().map(summary).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in &letters {
                    let m = &e.meta;
                    println!(
                        "{}  {}  {}  {}",
                        m.message_id,
                        m.header(headers::SOURCE).unwrap_or("-"),
                        m.header(headers::FAILURE_KIND).unwrap_or("-"),
                        m.header(headers::REASON).unwrap_or("-"),
                    );
                }
                eprintln!("{} dead letter(s) in {stage}", letters.len());
            }
        }
        DlqCommand::Show { stage, id } => {
            check_stage(&stage)?;
            let letters = bus.dlq_list(&stage, usize::MAX).await?;
            let Some(e) = letters.into_iter().find(|e| e.meta.message_id == id) else {
                bail!("no dead letter {id} in {stage}");
            };
            let body = match e.decode() {
                Ok(b) => serde_json::to_value(format!("{b:?}")).unwrap_or_default(),
                Err(err) => serde_json::Value::String(format!("<undecodable: {err}>")),
            };
            let generic: serde_json::Value =
                sightline_messages::from_msgpack(&e.body).unwrap_or(serde_json::Value::Null);
            let out = serde_json::json!({
                "summary": summary(&e),
                "failure": describe_failure(&e),
                "headers": e.meta.extra,
                "traceparent": e.meta.traceparent,
                "schema_version": e.meta.schema_version,
                "body": if generic.is_null() { body } else { generic },
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        DlqCommand::Replay { stage, ids, json } => {
            check_stage(&stage)?;
            let only = (!ids.is_empty()).then_some(ids.as_slice());
            let n = bus.dlq_replay(&stage, only).await?;
            if json {
                println!("{}", serde_json::json!({ "stage": stage, "replayed": n }));
            } else {
                println!("replayed {n} dead letter(s) to {stage}");
            }
        }
        DlqCommand::Purge { stage, yes } => {
            check_stage(&stage)?;
            if !yes {
                bail!("purging deletes every dead letter of {stage} for good; pass --yes to confirm");
            }
            let n = bus.dlq_purge(&stage).await?;
            println!("purged {n} dead letter(s) from {stage}");
        }
        DlqCommand::Depth { json } => {
            let mut all = serde_json::Map::new();
            for stage in STAGES {
                let d = bus.depth(stage).await?;
                if !json {
                    println!(
                        "{stage:<8} ready {:>7}  retrying {:>5}  dead {:>5}  consumers {:>3}",
                        d.ready, d.retrying, d.dead, d.consumers
                    );
                }
                all.insert(stage.to_owned(), serde_json::to_value(d)?);
            }
            if json {
                println!("{}", serde_json::Value::Object(all));
            }
        }
    }
    Ok(0)
}
