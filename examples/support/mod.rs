//! Pieces the load examples share (`mod support;` in each): a process' CPU time from
//! `/proc` and nearest-rank quantiles. Not an example itself (no `main.rs` here).
#![allow(dead_code)] // each example uses a part

/// utime + stime of process `pid` (`"self"` for this one) in clock ticks, from
/// `/proc/PID/stat` (fields 14 and 15, after the command name, which may hold spaces);
/// `None` where there is no such file (another OS, or the process is gone).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(") ")?.1.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Nearest rank: the smallest value at or above a share `q` (0–1) of `sorted`, which must
/// be sorted ascending; `None` when it is empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
