//! An audit log of what a process's record processors did, one JSON line per event, for the
//! chaos test to check delivery, order, ownership and re-delivery across crashed processes.
//!
//! Each line is written with one `write` to a file opened for appending, without buffering
//! in the process, so a line survives the process being killed right after it.
//!
//! ```text
//! {"t":1732240000123456,"w":4242,"e":"init","shard":"shardId-000000000001"}
//! {"t":…,"w":4242,"e":"batch","shard":"…","records":[["4960…",0,"k7:12"],…]}
//! {"t":…,"w":4242,"e":"checkpoint","shard":"…","seq":"4960…","sub":3}
//! {"t":…,"w":4242,"e":"lost"|"end"|"shutdown","shard":"…"}
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Where a process appends its audit events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Arc<Mutex<File>>,
    worker: u32,
}

/// Microseconds since the Unix epoch: comparable across processes of one machine.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl AuditLog {
    /// Opens (creating) `path` for appending; events carry this process's id as the worker.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog {
            file: Arc::new(Mutex::new(file)),
            worker: std::process::id(),
        })
    }

    /// Appends one event with the time, the worker and the given fields.
    pub fn event(&self, event: &str, shard: &str, fields: Value) {
        let mut line = json!({"t": now_micros(), "w": self.worker, "e": event, "shard": shard});
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "could not append to the audit log");
        }
    }
}

/// What an audit line says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A processor started on the shard, resuming after `from` (a checkpoint or position).
    Init {
        /// The checkpoint it resumed from.
        from: String,
    },
    /// A batch was delivered: (sequence number, sub-sequence number, data) per record.
    Batch {
        /// The records, in delivery order.
        records: Vec<(String, u64, String)>,
    },
    /// A checkpoint was written at this record.
    Checkpoint {
        /// Sequence number.
        seq: String,
        /// Sub-sequence number.
        sub: u64,
    },
    /// The lease was lost.
    Lost,
    /// The shard ended and was checkpointed as ended.
    End,
    /// The worker shut down gracefully.
    Shutdown {
        /// Whether its last checkpoint was written (a line without the field says it was).
        checkpointed: bool,
    },
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the epoch.
    pub t: u64,
    /// The worker (process id).
    pub worker: u32,
    /// The shard.
    pub shard: String,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// Parses one audit line; `None` for a torn or foreign line.
    pub fn parse(line: &str) -> Option<Event> {
        let v: Value = serde_json::from_str(line).ok()?;
        let kind = match v["e"].as_str()? {
            "init" => EventKind::Init {
                from: v["from"].as_str().unwrap_or_default().to_owned(),
            },
            "batch" => EventKind::Batch {
                records: v["records"]
                    .as_array()?
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r[0].as_str()?.to_owned(),
                            r[1].as_u64()?,
                            r[2].as_str()?.to_owned(),
                        ))
                    })
                    .collect(),
            },
            "checkpoint" => EventKind::Checkpoint {
                seq: v["seq"].as_str()?.to_owned(),
                sub: v["sub"].as_u64()?,
            },
            "lost" => EventKind::Lost,
            "end" => EventKind::End,
            "shutdown" => EventKind::Shutdown {
                checkpointed: v["checkpointed"].as_bool().unwrap_or(true),
            },
            _ => return None,
        };
        Some(Event {
            t: v["t"].as_u64()?,
            worker: u32::try_from(v["w"].as_u64()?).ok()?,
            shard: v["shard"].as_str()?.to_owned(),
            kind,
        })
    }
}

/// Every event in the `*.jsonl` files of a folder, in time order (file order among equals).
pub fn read_events(dir: &Path) -> std::io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path)?;
            events.extend(text.lines().filter_map(Event::parse));
        }
    }
    events.sort_by_key(|e| e.t);
    Ok(events)
}
