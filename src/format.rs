//! Number, duration and size formatting, the one home of it: the window and the command line
//! both write their figures through these.

/// `75` → `1m 15s`; `4000` → `1h 06m`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The time left of a stage from how long it has run: `ETA 1m 15s`, or nothing before the
/// first item is done.
pub fn stage_eta(started: std::time::Instant, done: usize, total: usize) -> String {
    if done == 0 || done >= total {
        return String::new();
    }
    let per_item = started.elapsed().as_secs_f64() / done as f64;
    format!(" · ETA {}", duration(per_item * (total - done) as f64))
}

/// A stage's progress seen from the UI: its name and when its first report came.
#[derive(Clone, Debug)]
pub struct StageClock {
    stage: String,
    started: std::time::Instant,
}

impl StageClock {
    /// `stage: done/total · ETA …`, restarting the clock when the stage changes.
    pub fn text(clock: &mut Option<StageClock>, stage: &str, done: usize, total: usize) -> String {
        let clock = match clock {
            Some(c) if c.stage == stage => c,
            other => other.insert(StageClock {
                stage: stage.to_string(),
                started: std::time::Instant::now(),
            }),
        };
        format!(
            "{stage}: {done}/{total}{}",
            stage_eta(clock.started, done, total)
        )
    }
}

/// `0.8834` → `88.34 %`.
pub fn percent(fraction: f64) -> String {
    format!("{:.2} %", fraction * 100.0)
}

/// A file size in B, KiB or MiB.
pub fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// `23128786` → `23,128,786`.
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_naturally() {
        assert_eq!(super::duration(5.2), "5s");
        assert_eq!(super::duration(75.0), "1m 15s");
        assert_eq!(super::duration(3960.0), "1h 06m");
    }
}
