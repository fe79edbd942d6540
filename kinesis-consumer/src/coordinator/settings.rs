//! The timings and limits the coordinator gives its tasks, from the worker's options.

use std::time::Duration;

use crate::config::Config;
use crate::fleet::heartbeat::HeartbeatSettings;
use crate::fleet::leader::LeaderSettings;

/// The heartbeat's timing: at least twice a second (it also carries assignments), and no
/// slower than lease renewals, so the worker's deadline is never the tighter one.
pub(super) fn heartbeat_settings(cfg: &Config) -> HeartbeatSettings {
    HeartbeatSettings {
        interval: cfg.renewal_interval.min(Duration::from_millis(500)),
        failover: cfg.failover_time,
        margin: cfg.lease_deadline_margin,
        call_timeout: cfg.dynamodb_call_timeout,
        max_throughput_kbps: cfg.max_throughput_per_worker,
    }
}

pub(super) fn leader_settings(cfg: &Config, heartbeat: Duration) -> LeaderSettings {
    LeaderSettings {
        poll: heartbeat,
        standby_poll: heartbeat,
        check: (cfg.failover_time * 3).max(Duration::from_secs(30)),
        lock_renewal: cfg.renewal_interval,
        failover: cfg.failover_time,
        margin: cfg.lease_deadline_margin,
        call_timeout: cfg.dynamodb_call_timeout,
        scan_interval: cfg.taking_interval,
        sync_interval: cfg.shard_sync_interval,
        settle: heartbeat,
        max_steal: cfg.max_leases_to_steal,
        balance: cfg.balance,
        balance_threshold: cfg.balance_threshold,
        graceful_handoff: !cfg.graceful_handoff_timeout.is_zero(),
        cleanup_grace: cfg.lease_cleanup_grace,
    }
}
