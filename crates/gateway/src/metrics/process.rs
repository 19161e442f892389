//! The process metrics of the Prometheus client libraries' convention (`process_*`), read from
//! `/proc` on Linux at each scrape.
//!
//! Owns: the pure parsers of `/proc/self/stat`, `/proc/self/statm`, `/proc/stat` (`btime`) and
//! `/proc/self/limits`, and [`ProcessCollector`], the IO edge that reads those files and the
//! open descriptors (`/proc/self/fd`). Clock ticks and the page size come from the kernel's
//! auxiliary vector (`rustix::param`), not from assumed constants.
//!
//! Must not: fail a scrape. What cannot be read is left out of that scrape (and logged at debug).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A `/proc` file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("{file}: {source}")]
    Read {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: no {what} in it")]
    Malformed {
        file: &'static str,
        what: &'static str,
    },
}

/// What `/proc/self/stat` says of the process (in clock ticks and pages, as the kernel counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Time in user mode (`utime`) and kernel mode (`stime`), in clock ticks.
    pub user_ticks: u64,
    pub system_ticks: u64,
    /// When the process started, in clock ticks after boot (`starttime`).
    pub start_ticks: u64,
}

/// Parses `/proc/self/stat` (proc(5)): the fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Result<Stat, ProcError> {
    const FILE: &str = "/proc/self/stat";
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or(ProcError::Malformed {
            file: FILE,
            what: "command name",
        })?;
    // Field 3 (state) is index 0 here: utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize, what: &'static str| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or(ProcError::Malformed { file: FILE, what })
    };
    Ok(Stat {
        user_ticks: field(14, "utime")?,
        system_ticks: field(15, "stime")?,
        start_ticks: field(22, "starttime")?,
    })
}

/// Parses `/proc/self/statm`: the virtual size and the resident set, in pages.
pub fn parse_statm(text: &str) -> Result<(u64, u64), ProcError> {
    const FILE: &str = "/proc/self/statm";
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let mut next = |what| {
        fields
            .next()
            .and_then(Result::ok)
            .ok_or(ProcError::Malformed { file: FILE, what })
    };
    Ok((next("size")?, next("resident")?))
}

/// The boot time in Unix seconds: the `btime` line of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Result<u64, ProcError> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        .ok_or(ProcError::Malformed {
            file: "/proc/stat",
            what: "btime",
        })
}

/// The soft limit on open file descriptors, from `/proc/self/limits`; `None` when unlimited.
pub fn parse_max_fds(text: &str) -> Result<Option<u64>, ProcError> {
    let malformed = ProcError::Malformed {
        file: "/proc/self/limits",
        what: "Max open files",
    };
    let Some(rest) = text.lines().find_map(|l| l.strip_prefix("Max open files")) else {
        return Err(malformed);
    };
    match rest.split_whitespace().next() {
        Some("unlimited") => Ok(None),
        Some(soft) => soft.parse().map(Some).map_err(|_| malformed),
        None => Err(malformed),
    }
}

/// One reading of the process metrics, in the units they are exposed in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

/// Combines what the files say (pure): `ticks` per second, `page_size` in bytes.
#[allow(clippy::cast_precision_loss)] // tick counts and boot times are far below 2^52
pub fn sample(
    stat: Stat,
    statm: (u64, u64),
    boot_time: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    ticks: u64,
    page_size: u64,
) -> Sample {
    let ticks = ticks.max(1) as f64;
    Sample {
        cpu_seconds: (stat.user_ticks + stat.system_ticks) as f64 / ticks,
        resident_memory_bytes: statm.1.saturating_mul(page_size),
        virtual_memory_bytes: statm.0.saturating_mul(page_size),
        start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / ticks,
        open_fds,
        max_fds,
    }
}

fn read(file: &'static str) -> Result<String, ProcError> {
    std::fs::read_to_string(file).map_err(|source| ProcError::Read { file, source })
}

/// Reads this process's metrics now.
pub fn read_sample() -> Result<Sample, ProcError> {
    let stat = parse_stat(&read("/proc/self/stat")?)?;
    let statm = parse_statm(&read("/proc/self/statm")?)?;
    let boot_time = parse_boot_time(&read("/proc/stat")?)?;
    let max_fds = parse_max_fds(&read("/proc/self/limits")?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| ProcError::Read {
            file: "/proc/self/fd",
            source,
        })?
        .count() as u64;
    Ok(sample(
        stat,
        statm,
        boot_time,
        open_fds,
        max_fds,
        rustix::param::clock_ticks_per_second(),
        rustix::param::page_size() as u64,
    ))
}

/// Adds the `process_*` metrics to each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl ProcessCollector {
    pub fn new() -> Self {
        ProcessCollector
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = match read_sample() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "process metrics left out of this scrape");
                return Ok(());
            }
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Some(as_f64(s.resident_memory_bytes)),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Some(as_f64(s.virtual_memory_bytes)),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                Some(s.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Some(as_f64(s.open_fds)),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds.map(as_f64),
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[allow(clippy::cast_precision_loss)] // byte and descriptor counts are far below 2^52
fn as_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line of Linux 6.x (`cat /proc/self/stat`), with a command name that holds a space
    // and a parenthesis, as a process may name itself.
    const STAT: &str = "4242 (siirto (a) x) S 1 4242 4242 0 -1 4194560 2870 0 0 0 150 37 0 0 20 0 \
                        9 0 123456 1325400064 4321 18446744073709551615 1 1 0 0 0 0 0 4096 17920 \
                        0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        assert_eq!(
            parse_stat(STAT).unwrap(),
            Stat {
                user_ticks: 150,
                system_ticks: 37,
                start_ticks: 123_456,
            }
        );
        assert!(matches!(
            parse_stat("4242 siirto S 1"),
            Err(ProcError::Malformed {
                what: "command name",
                ..
            })
        ));
        assert!(matches!(
            parse_stat("4242 (siirto) S 1 2 3"),
            Err(ProcError::Malformed { what: "utime", .. })
        ));
    }

    #[test]
    fn statm_boot_time_and_limits() {
        assert_eq!(
            parse_statm("323584 4321 1800 600 0 60000 0\n").unwrap(),
            (323_584, 4321)
        );
        assert!(parse_statm("323584").is_err());
        let proc_stat = "cpu  1 2 3 4\nintr 1 2\nctxt 99\nbtime 1764000000\nprocesses 7\n";
        assert_eq!(parse_boot_time(proc_stat).unwrap(), 1_764_000_000);
        assert!(parse_boot_time("cpu 1 2\n").is_err());
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits).unwrap(), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited).unwrap(), None);
        assert!(parse_max_fds("Max processes 10 10 processes\n").is_err());
    }

    #[test]
    fn a_sample_is_in_seconds_and_bytes() {
        let s = sample(
            parse_stat(STAT).unwrap(),
            (323_584, 4321),
            1_764_000_000,
            12,
            Some(1024),
            100,
            4096,
        );
        assert_eq!(s.cpu_seconds, 1.87);
        assert_eq!(s.resident_memory_bytes, 4321 * 4096);
        assert_eq!(s.virtual_memory_bytes, 323_584 * 4096);
        assert!(
            (s.start_time_seconds - 1_764_001_234.56).abs() < 1e-6,
            "{s:?}"
        );
        assert_eq!((s.open_fds, s.max_fds), (12, Some(1024)));
    }

    #[test]
    fn this_process_reads_as_itself() {
        let s = read_sample().unwrap();
        assert!(s.resident_memory_bytes > 0 && s.resident_memory_bytes <= s.virtual_memory_bytes);
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.max_fds.is_none_or(|m| m >= s.open_fds), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
