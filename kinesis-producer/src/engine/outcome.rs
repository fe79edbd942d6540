//! What a PutRecords answer means for each entry it carried: the one place where a request's
//! or an entry's error is judged throttling, transient or fatal. Pure: no engine state.

use aws_sdk_kinesis::types::PutRecordsResultEntry;
use kinesis_common::error::classify_code;
use kinesis_common::{ErrorKind, ServiceError};

use super::clone_service_error;
use crate::error::ProduceError;

/// What happened to one entry.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Kinesis stored it on this shard at this sequence number.
    Put {
        shard_id: String,
        sequence_number: String,
    },
    /// The shard (or the whole request) was over its limit: slow down, then send again.
    Throttled { code: String, detail: String },
    /// A failure that may pass (5xx, timeout, dropped connection): send again.
    Transient { detail: String },
    /// Sending it again cannot work.
    Fatal(Fatal),
}

/// A failure that retrying cannot fix.
#[derive(Debug)]
pub(super) enum Fatal {
    /// The whole request failed (stream missing, access denied…).
    Request(ServiceError),
    /// The entry was refused.
    Entry { code: String, message: String },
}

impl Fatal {
    /// The error each of the entry's user records fails with.
    pub(super) fn to_error(&self) -> ProduceError {
        match self {
            Fatal::Request(e) => ProduceError::Service {
                source: clone_service_error(e),
            },
            Fatal::Entry { code, message } => ProduceError::Rejected {
                code: code.clone(),
                message: message.clone(),
            },
        }
    }
}

/// A request's answer, judged.
#[derive(Debug)]
pub(super) struct Judged {
    /// One verdict per entry, in order.
    pub verdicts: Vec<Verdict>,
    /// The request failed as a whole (no per-entry answer).
    pub request_failed: bool,
    /// The request was throttled as a whole, or at least one entry was.
    pub throttled: bool,
    /// The error code of the failed request, or of each failed entry, for metrics.
    pub error_codes: Vec<String>,
}

impl Judged {
    /// Entries throttled inside an answered request.
    pub(super) fn throttled_entries(&self) -> u64 {
        if self.request_failed {
            return 0;
        }
        self.verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Throttled { .. }))
            .count() as u64
    }
}

/// Judges the answer to a request of `entries` entries: the per-entry results, or the error
/// the whole request failed with.
pub(super) fn judge(
    answer: Result<Vec<PutRecordsResultEntry>, ServiceError>,
    entries: usize,
) -> Judged {
    let results = match answer {
        Ok(results) if results.len() == entries => results,
        Ok(results) => {
            let error = ServiceError {
                operation: "PutRecords",
                kind: ErrorKind::Transient,
                code: None,
                http_status: None,
                message: format!("{} results for {entries} entries", results.len()),
                source: None,
            };
            return judge_failed_request(error, entries);
        }
        Err(error) => return judge_failed_request(error, entries),
    };
    let mut judged = Judged {
        verdicts: Vec::with_capacity(entries),
        request_failed: false,
        throttled: false,
        error_codes: Vec::new(),
    };
    for result in results {
        let verdict = match (result.sequence_number, result.shard_id) {
            (Some(sequence_number), Some(shard_id)) => Verdict::Put {
                shard_id,
                sequence_number,
            },
            _ => {
                let code = result.error_code.unwrap_or_else(|| "Unknown".into());
                let message = result.error_message.unwrap_or_default();
                judged.error_codes.push(code.clone());
                match classify_code(&code, None) {
                    ErrorKind::Throttling => {
                        judged.throttled = true;
                        let detail = format!("{code}: {message}");
                        Verdict::Throttled { code, detail }
                    }
                    ErrorKind::Transient => Verdict::Transient {
                        detail: format!("{code}: {message}"),
                    },
                    _ => Verdict::Fatal(Fatal::Entry { code, message }),
                }
            }
        };
        judged.verdicts.push(verdict);
    }
    judged
}

fn judge_failed_request(error: ServiceError, entries: usize) -> Judged {
    let code = error
        .code
        .clone()
        .unwrap_or_else(|| format!("{:?}", error.kind));
    let detail = error.to_string();
    let throttled = error.kind == ErrorKind::Throttling;
    let verdicts = (0..entries)
        .map(|_| match error.kind {
            ErrorKind::Throttling => Verdict::Throttled {
                code: error.code.clone().unwrap_or_default(),
                detail: detail.clone(),
            },
            ErrorKind::Fatal => Verdict::Fatal(Fatal::Request(clone_service_error(&error))),
            _ => Verdict::Transient {
                detail: detail.clone(),
            },
        })
        .collect();
    Judged {
        verdicts,
        request_failed: true,
        throttled,
        error_codes: vec![code],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(shard: &str, seq: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .shard_id(shard)
            .sequence_number(seq)
            .build()
    }

    fn failed(code: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code(code)
            .error_message("because")
            .build()
    }

    fn service(kind: ErrorKind, code: &str) -> ServiceError {
        ServiceError {
            operation: "PutRecords",
            kind,
            code: Some(code.into()),
            http_status: Some(400),
            message: "no".into(),
            source: None,
        }
    }

    #[test]
    fn each_entry_of_an_answer_gets_its_own_verdict() {
        let judged = judge(
            Ok(vec![
                put("shardId-1", "49"),
                failed("ProvisionedThroughputExceededException"),
                failed("InternalFailure"),
                failed("KMSAccessDeniedException"),
            ]),
            4,
        );
        assert!(!judged.request_failed && judged.throttled);
        assert_eq!(judged.throttled_entries(), 1);
        assert!(
            matches!(&judged.verdicts[0], Verdict::Put { shard_id, sequence_number }
            if shard_id == "shardId-1" && sequence_number == "49")
        );
        assert!(
            matches!(&judged.verdicts[1], Verdict::Throttled { code, .. }
            if code == "ProvisionedThroughputExceededException")
        );
        assert!(matches!(&judged.verdicts[2], Verdict::Transient { detail }
            if detail == "InternalFailure: because"));
        let Verdict::Fatal(fatal) = &judged.verdicts[3] else {
            panic!("{:?}", judged.verdicts[3]);
        };
        assert!(
            matches!(fatal.to_error(), ProduceError::Rejected { code, .. }
            if code == "KMSAccessDeniedException")
        );
        assert_eq!(judged.error_codes.len(), 3);
    }

    #[test]
    fn a_failed_request_judges_every_entry_alike() {
        let throttled = judge(
            Err(service(ErrorKind::Throttling, "LimitExceededException")),
            3,
        );
        assert!(throttled.request_failed && throttled.throttled);
        assert_eq!(throttled.throttled_entries(), 0, "counted as a request");
        assert!(
            throttled
                .verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Throttled { .. }))
        );

        let missing = judge(
            Err(service(ErrorKind::Fatal, "ResourceNotFoundException")),
            2,
        );
        assert!(!missing.throttled);
        assert_eq!(missing.error_codes, ["ResourceNotFoundException"]);
        for verdict in &missing.verdicts {
            let Verdict::Fatal(fatal) = verdict else {
                panic!("{verdict:?}");
            };
            assert!(matches!(fatal.to_error(), ProduceError::Service { .. }));
        }

        let dropped = judge(Err(service(ErrorKind::Transient, "RequestTimeout")), 1);
        assert!(matches!(dropped.verdicts[0], Verdict::Transient { .. }));
    }

    #[test]
    fn an_answer_with_the_wrong_number_of_results_is_transient() {
        let judged = judge(Ok(vec![put("shardId-1", "1")]), 2);
        assert!(judged.request_failed && !judged.throttled);
        assert_eq!(judged.verdicts.len(), 2);
        assert!(
            judged
                .verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Transient { .. }))
        );
    }
}
