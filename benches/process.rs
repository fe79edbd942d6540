//! What a process uses, from /proc: CPU time (of this process, of its threads leaving out the
//! embedded emulators', or of another process), and this process's peak resident set.

/// CPU seconds (user + system) in a `/proc/…/stat` file (a process's or a thread's); 0 when
/// it cannot be read.
fn stat_cpu_seconds(path: impl AsRef<std::path::Path>) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (in parentheses, and it may hold spaces); utime and stime
    // are fields 14 and 15 of the line, 12 and 13 after the name.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds (user + system) of this process's threads, except those of the in-process
/// emulators (named `kinesis-testkit…`).
pub fn worker_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            !comm.starts_with("kinesis-testkit")
        })
        .map(|task| stat_cpu_seconds(task.path().join("stat")))
        .sum()
}

/// CPU seconds (user + system) of this whole process, every thread included.
pub fn process_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds (user + system) of process `pid`, every thread included.
pub fn pid_cpu_seconds(pid: &str) -> f64 {
    stat_cpu_seconds(format!("/proc/{pid}/stat"))
}

/// Peak resident set size in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Resident set size now, in MiB.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A kB figure of /proc/self/status, in MiB (0 where there is none).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
