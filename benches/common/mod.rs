//! What the benchmarks share: the machine line, CPU time and peak memory of this process, of
//! another process (a gateway the bench started) and of one thread.
#![allow(dead_code)]

use std::time::Duration;

/// `N CPUs, model name` of this machine.
pub fn machine() -> String {
    format!(
        "{} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    )
}

/// Peak resident memory of this process, MiB.
pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_at("/proc/self/status")
}

/// Peak resident memory (`VmHWM`) of process `pid`, MiB (0 when it cannot be read).
pub fn peak_rss_mib_of(pid: u32) -> f64 {
    peak_rss_mib_at(&format!("/proc/{pid}/status"))
}

fn peak_rss_mib_at(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time of this process so far (every thread, user + system): where the database works in
/// this process (SQLite), a rate per CPU second is a figure other load on the machine moves much
/// less than wall time.
pub fn cpu_time() -> Duration {
    cpu_time_at("/proc/self/stat")
}

/// CPU time of process `pid` so far (every thread, user + system; zero when it cannot be read).
pub fn cpu_time_of(pid: u32) -> Duration {
    cpu_time_at(&format!("/proc/{pid}/stat"))
}

/// CPU time of thread `tid` of this process so far (user + system; zero when it has ended).
pub fn thread_cpu_time(tid: u32) -> Duration {
    cpu_time_at(&format!("/proc/self/task/{tid}/stat"))
}

/// The id of the calling thread (its entry under `/proc/self/task`).
pub fn current_tid() -> Option<u32> {
    // `/proc/thread-self` links to `PID/task/TID`.
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// utime + stime of a `/proc/.../stat` file.
fn cpu_time_at(stat: &str) -> Duration {
    static TICKS_PER_SECOND: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks_per_second = *TICKS_PER_SECOND.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(100)
    });
    let ticks = std::fs::read_to_string(stat)
        .ok()
        .and_then(|s| {
            // After the command name (in parentheses): utime and stime are the 12th and 13th
            // fields (the 14th and 15th of the whole line).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// The `p`-quantile (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The `--name value` pairs of the command line (`cargo bench` adds a lone `--bench`, which is
/// skipped).
pub fn args() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(name) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        out.push((name, value));
    }
    out
}

/// `--backend sqlite|postgres|both`.
pub fn backends(value: &str) -> Vec<&'static str> {
    match value {
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        _ => vec!["sqlite", "postgres"],
    }
}
