//! The demo's records: one JSON line each, with an id unique across runs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Makes records `{"id":"RUN-N","created_ms":…,"payload":"…"}` padded to about `size` bytes.
#[derive(Debug, Clone)]
pub struct Generator {
    run: String,
    size: usize,
}

impl Generator {
    /// A generator for one run, with a fresh run id.
    pub fn new(size: usize) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Generator {
            run: format!("{:x}{:04x}", now.as_millis(), rand_suffix()),
            size,
        }
    }

    /// The run id every record id starts with.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The `n`th record's id.
    pub fn id(&self, n: u64) -> String {
        format!("{}-{n}", self.run)
    }

    /// The `n`th record: (partition key, JSON line without the newline).
    pub fn record(&self, n: u64) -> (String, Vec<u8>) {
        let id = self.id(n);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let head = format!(r#"{{"id":"{id}","created_ms":{created},"payload":""#);
        let pad = self.size.saturating_sub(head.len() + 2);
        let mut line = head.into_bytes();
        line.extend(std::iter::repeat_n(b'x', pad));
        line.extend_from_slice(b"\"}");
        (id, line)
    }
}

fn rand_suffix() -> u16 {
    // Enough to tell two runs started in the same millisecond apart.
    (std::process::id() as u16)
        ^ (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos() as u16)
}

/// The id inside a generated line, if it is one.
pub fn id_of(line: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix(r#"{"id":""#)?;
    rest.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_their_id_and_about_the_size_asked() {
        let g = Generator::new(120);
        let (key, line) = g.record(7);
        assert_eq!(key, g.id(7));
        assert_eq!(id_of(&line), Some(g.id(7).as_str()));
        assert_eq!(line.len(), 120);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["id"], g.id(7));
    }
}
