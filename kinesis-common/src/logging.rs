//! A `tracing` filter for programs built on this library: `RUST_LOG` as usual, except that
//! the AWS SDK's internals stay at INFO unless asked for by name.
//!
//! At TRACE the SDK prints each request it sends (the `Authorization` header with the access
//! key id, and `x-amz-security-token` with a session token) and the canonical request it
//! signs; at DEBUG, the identity it resolved (the access key id; the secret is redacted).
//! This library itself never logs credentials or record payloads at any level, but
//! `RUST_LOG=debug` or `trace` would turn those SDK dumps on.
//! [`env_filter`] caps the SDK crates listed in [`SDK_WIRE_TARGETS`] at INFO; naming one of
//! them in `RUST_LOG` (say `RUST_LOG=trace,aws_sigv4=trace`) lifts the cap for that one.
//!
//! ```no_run
//! tracing_subscriber::fmt()
//!     .with_env_filter(kinesis_common::logging::env_filter("info"))
//!     .init();
//! ```

use tracing_subscriber::EnvFilter;

/// The SDK crates whose DEBUG and TRACE output carries credentials or signed requests.
pub const SDK_WIRE_TARGETS: [&str; 6] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
];

/// `RUST_LOG`'s directives (or `default` when it is unset or empty); when they set the
/// global level to DEBUG or TRACE, every target of [`SDK_WIRE_TARGETS`] they do not name is
/// capped at INFO.
pub fn env_filter(default: &str) -> EnvFilter {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    directives(&spec)
        .parse::<EnvFilter>()
        .unwrap_or_else(|_| EnvFilter::new(directives(default)))
}

/// The directive string [`env_filter`] builds from a `RUST_LOG`-style spec.
pub fn directives(spec: &str) -> String {
    let global_verbose = spec.split(',').any(|d| {
        let d = d.trim();
        d.eq_ignore_ascii_case("trace") || d.eq_ignore_ascii_case("debug")
    });
    if !global_verbose {
        return spec.trim().to_owned();
    }
    let named = |target: &str| {
        spec.split(',')
            .filter_map(|d| d.split('=').next())
            .any(|t| t.trim() == target || t.trim().starts_with(&format!("{target}::")))
    };
    let mut out = spec.trim().to_owned();
    for target in SDK_WIRE_TARGETS.iter().filter(|t| !named(t)) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(target);
        out.push_str("=info");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_keeps_the_sdk_internals_at_info() {
        let d = directives("trace");
        assert!(d.starts_with("trace,"));
        for target in SDK_WIRE_TARGETS {
            assert!(d.contains(&format!("{target}=info")), "{d}");
        }
        d.parse::<EnvFilter>().unwrap();
    }

    #[test]
    fn other_levels_are_left_alone() {
        assert_eq!(directives(""), "");
        assert_eq!(directives("info"), "info");
        assert!(directives("debug").contains("aws_sigv4=info"));
        assert_eq!(
            directives("warn,kinesis_producer=trace"),
            "warn,kinesis_producer=trace"
        );
    }

    #[test]
    fn a_target_named_in_rust_log_is_left_as_asked() {
        let d = directives("trace,aws_sigv4=trace,aws_smithy_runtime::client=trace");
        assert!(!d.contains("aws_sigv4=info"), "{d}");
        assert!(!d.contains("aws_smithy_runtime=info"), "{d}");
        assert!(d.contains("aws_config=info"), "{d}");
    }
}
