//! What the benchmarks read about the machine and the service's process from `/proc`, so
//! every report describes them the same way. Included by `common/mod.rs` (e2e, peer) and
//! with `#[path]` by the benchmarks that do not drive `wrk` (soak, intake).

// Each benchmark uses part of this module.
#![allow(dead_code)]

/// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// A `… kB` line of a `/proc` file (`MemTotal:` of `/proc/meminfo`, `VmHWM:` of
/// `/proc/PID/status`, …), in MiB.
pub fn kb_field_mib(path: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A memory figure of process `pid` (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`), in MiB.
pub fn process_mib(pid: u32, field: &str) -> Option<f64> {
    kb_field_mib(&format!("/proc/{pid}/status"), field)
}

/// The machine's CPU time so far, in clock ticks, from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// Taken by the hypervisor (a VM's latency moves with it).
    pub steal: u64,
    /// user nice system idle iowait irq softirq steal (guest time is inside user).
    pub total: u64,
}

impl CpuTicks {
    /// The ticks spent since `earlier`. Saturating: iowait, and so busy and total, may
    /// step back a little between two reads (the kernel documents it as unreliable).
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            busy: self.busy.saturating_sub(earlier.busy),
            steal: self.steal.saturating_sub(earlier.steal),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// Reads [`CpuTicks`] now (all zero without `/proc`).
pub fn cpu_ticks() -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let times: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let at = |i: usize| times.get(i).copied().unwrap_or(0);
    let total: u64 = times.iter().take(8).sum();
    CpuTicks {
        busy: total.saturating_sub(at(3) + at(4)),
        steal: at(7),
        total,
    }
}
