//! Object key prefixes: Firehose's templates.
//!
//! A template is text with expressions in `!{…}`:
//!
//! | expression | becomes |
//! | --- | --- |
//! | `!{timestamp:yyyy/MM/dd/HH}` | the record's approximate arrival time in the sink's time zone, in a Java `DateTimeFormatter` pattern (`yyyy`, `yy`, `MM`, `dd`, `HH`, `mm`, `ss`, text in `'…'`) |
//! | `!{partitionKeyFromQuery:name}`, `!{partitionKeyFromLambda:name}` | the key `name` that the user's partitioning function gave the record (both spellings Firehose has) |
//! | `!{firehose:error-output-type}` | in an error prefix: `processing-failed`, `partitioning-failed` or `format-conversion-failed` |
//!
//! As in Firehose, a template without a timestamp expression gets `!{timestamp:yyyy/MM/dd/HH/}`
//! appended, and the empty template is just that: `YYYY/MM/dd/HH/`.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use crate::error::SinkError;

/// The expression Firehose appends to a prefix without a timestamp.
const DEFAULT_TIME: &str = "!{timestamp:yyyy/MM/dd/HH/}";

/// A parsed prefix template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Time(Vec<TimePart>),
    Key(String),
    ErrorType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimePart {
    Literal(String),
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// Why a record's prefix could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// The template names a key the partitioning function did not give.
    MissingKey(String),
    /// A key's value cannot be part of an object key.
    BadValue { key: String, value: String },
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::MissingKey(key) => write!(f, "no partition key {key:?} for the prefix"),
            RenderError::BadValue { key, value } => write!(
                f,
                "partition key {key:?} = {value:?} cannot be part of an object key (empty, `.`, `..`, a `/`, or a control character)"
            ),
        }
    }
}

impl PrefixTemplate {
    /// Parses `template`, appending `!{timestamp:yyyy/MM/dd/HH/}` when it has no timestamp.
    pub fn parse(template: &str) -> Result<PrefixTemplate, SinkError> {
        let invalid = |reason: String| SinkError::InvalidPrefix {
            template: template.to_owned(),
            reason,
        };
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid("an expression `!{` is not closed".into()))?;
            let expr = &after[..end];
            let (namespace, arg) = expr.split_once(':').unwrap_or((expr, ""));
            parts.push(match namespace {
                "timestamp" => Part::Time(parse_time(arg).map_err(invalid)?),
                "partitionKeyFromQuery" | "partitionKeyFromLambda" if !arg.is_empty() => {
                    Part::Key(arg.to_owned())
                }
                "firehose" if arg == "error-output-type" => Part::ErrorType,
                _ => return Err(invalid(format!("unknown expression `!{{{expr}}}`"))),
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Time(_))) {
            let mut appended = PrefixTemplate::parse(DEFAULT_TIME)?.parts;
            parts.append(&mut appended);
        }
        Ok(PrefixTemplate { parts })
    }

    /// Names of the partition keys the template uses.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Key(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// The prefix of a record that arrived `at`, with `keys` from the partitioning function
    /// and, in an error prefix, the kind of error.
    pub(crate) fn render(
        &self,
        at: DateTime<FixedOffset>,
        keys: &[(String, String)],
        error_type: Option<&str>,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(32);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Time(time) => render_time(time, at, &mut out),
                Part::Key(name) => {
                    let value = keys
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v)
                        .ok_or_else(|| RenderError::MissingKey(name.clone()))?;
                    if !safe_key_value(value) {
                        return Err(RenderError::BadValue {
                            key: name.clone(),
                            value: value.clone(),
                        });
                    }
                    out.push_str(value);
                }
                Part::ErrorType => out.push_str(error_type.unwrap_or("processing-failed")),
            }
        }
        Ok(out)
    }
}

/// A partition key value that stays one path segment of an object key.
fn safe_key_value(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && !value.chars().any(|c| c == '/' || c.is_control())
}

/// Parses a Java `DateTimeFormatter` pattern: letter runs are fields, `'…'` is text.
fn parse_time(pattern: &str) -> Result<Vec<TimePart>, String> {
    let mut parts = Vec::new();
    let mut chars = pattern.chars().peekable();
    let mut literal = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' {
            for q in chars.by_ref() {
                if q == '\'' {
                    break;
                }
                literal.push(q);
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal.push(c);
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            run += 1;
        }
        let field = match (c, run) {
            ('y', 4) => TimePart::Year4,
            ('y', 2) => TimePart::Year2,
            ('M', 2) => TimePart::Month,
            ('d', 2) => TimePart::Day,
            ('H', 2) => TimePart::Hour,
            ('m', 2) => TimePart::Minute,
            ('s', 2) => TimePart::Second,
            _ => {
                return Err(format!(
                    "time pattern {pattern:?}: `{}` is not one of yyyy, yy, MM, dd, HH, mm, ss",
                    c.to_string().repeat(run)
                ));
            }
        };
        if !literal.is_empty() {
            parts.push(TimePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(field);
    }
    if !literal.is_empty() {
        parts.push(TimePart::Literal(literal));
    }
    if parts.is_empty() {
        return Err("`!{timestamp:}` needs a pattern".into());
    }
    Ok(parts)
}

fn render_time(parts: &[TimePart], at: DateTime<FixedOffset>, out: &mut String) {
    use std::fmt::Write as _;
    for part in parts {
        let _ = match part {
            TimePart::Literal(text) => {
                out.push_str(text);
                Ok(())
            }
            TimePart::Year4 => write!(out, "{:04}", at.year()),
            TimePart::Year2 => write!(out, "{:02}", at.year().rem_euclid(100)),
            TimePart::Month => write!(out, "{:02}", at.month()),
            TimePart::Day => write!(out, "{:02}", at.day()),
            TimePart::Hour => write!(out, "{:02}", at.hour()),
            TimePart::Minute => write!(out, "{:02}", at.minute()),
            TimePart::Second => write!(out, "{:02}", at.second()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(offset_hours: i32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(offset_hours * 3600)
            .unwrap()
            .from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2026, 12, 5)
                    .unwrap()
                    .and_hms_opt(23, 4, 5)
                    .unwrap(),
            )
    }

    #[test]
    fn the_empty_template_is_firehoses_default() {
        let t = PrefixTemplate::parse("").unwrap();
        assert_eq!(t.render(at(0), &[], None).unwrap(), "2026/12/05/23/");
    }

    #[test]
    fn a_template_without_time_gets_the_default_appended() {
        let t = PrefixTemplate::parse("raw/").unwrap();
        assert_eq!(t.render(at(0), &[], None).unwrap(), "raw/2026/12/05/23/");
    }

    #[test]
    fn time_zones_move_the_folder() {
        let t = PrefixTemplate::parse("").unwrap();
        assert_eq!(t.render(at(2), &[], None).unwrap(), "2026/12/06/01/");
    }

    #[test]
    fn patterns_keys_and_error_types() {
        let t = PrefixTemplate::parse(
            "!{firehose:error-output-type}/c=!{partitionKeyFromQuery:customer}/!{timestamp:'year='yy/'t='HH-mm-ss}/",
        )
        .unwrap();
        let keys = [("customer".to_owned(), "acme".to_owned())];
        assert_eq!(
            t.render(at(0), &keys, Some("partitioning-failed")).unwrap(),
            "partitioning-failed/c=acme/year=26/t=23-04-05/"
        );
        assert_eq!(t.keys().collect::<Vec<_>>(), ["customer"]);
        assert_eq!(
            t.render(at(0), &[], None),
            Err(RenderError::MissingKey("customer".into()))
        );
        for bad in ["", "..", "a/b", "x\ny"] {
            let keys = [("customer".to_owned(), bad.to_owned())];
            assert!(matches!(
                t.render(at(0), &keys, None),
                Err(RenderError::BadValue { .. })
            ));
        }
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (template, reason) in [
            ("!{timestamp:yyyy", "not closed"),
            ("!{timestamp:YYYY}", "`YYYY`"),
            ("!{nope:x}", "unknown expression"),
            ("!{partitionKeyFromQuery:}", "unknown expression"),
            ("!{timestamp:}", "needs a pattern"),
        ] {
            let e = PrefixTemplate::parse(template).unwrap_err().to_string();
            assert!(e.contains(reason), "{template}: {e}");
        }
    }
}
