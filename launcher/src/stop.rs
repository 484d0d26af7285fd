//! How long Plex gets between TERM and KILL when the launcher stops it.
//!
//! Under systemd the unit's `TimeoutStopSec` (90 s by default) is the real
//! limit: when it runs out systemd KILLs the whole unit itself. A launcher
//! that KILLed Plex after its own 10 s would cut short a large library's
//! clean close that systemd would have allowed. So, unless
//! `launcher.grace_period_ms` is set, the grace period under systemd is
//! the unit's `TimeoutStopSec` less a margin (a tenth, between 2 and 10 s),
//! leaving the launcher time to KILL, reap and report before systemd
//! acts; elsewhere it is the setting's default. An explicit setting wins,
//! with a warning when systemd would KILL first.
//!
//! The unit and its timeout are read from what systemd itself says: the
//! unit's name from `/proc/self/cgroup`, the timeout from `systemctl show`
//! (by [`crate::systemd`]'s rules: an absolute root-owned path, an empty
//! environment, killed after 2 s), never from anything the Plex user
//! controls.

use std::time::Duration;

use plex_pg_config::{Settings, Source};

/// The grace period, one line saying where it came from (for the log and
/// `check`), and whether systemd will KILL before it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grace {
    pub period: Duration,
    pub why: String,
    pub systemd_kills_first: bool,
}

/// The grace period for these settings, in this process's environment.
pub fn grace_period(settings: &Settings) -> Grace {
    let explicit = match settings.origin("launcher.grace_period_ms") {
        Source::Default => None,
        from => Some((settings.launcher.grace_period, from)),
    };
    let systemd = systemd_unit().and_then(|unit| Some((stop_timeout(&unit)?, unit)));
    decide(settings.launcher.grace_period, explicit, systemd)
}

/// The decision, from what was found: the default, an explicit setting
/// (value and source), and the systemd unit's stop timeout (`None` for
/// infinity) with the unit's name.
pub fn decide(
    default: Duration,
    explicit: Option<(Duration, Source)>,
    systemd: Option<(Option<Duration>, String)>,
) -> Grace {
    let conflict = matches!((&explicit, &systemd), (Some((grace, _)), Some((Some(limit), _))) if grace >= limit);
    let (period, why) = match (explicit, systemd) {
        (Some((grace, from)), Some((Some(limit), unit))) if grace >= limit => (
            grace,
            format!(
                "KILL {} after TERM (launcher.grace_period_ms, from {from}), but {unit}'s TimeoutStopSec is {}, so systemd KILLs the whole unit first: lower the setting, or raise TimeoutStopSec",
                span(grace),
                span(limit)
            ),
        ),
        (Some((grace, from)), _) => (
            grace,
            format!(
                "KILL {} after TERM (launcher.grace_period_ms, from {from})",
                span(grace)
            ),
        ),
        (None, Some((Some(limit), unit))) => {
            let margin = (limit / 10).clamp(Duration::from_secs(2), Duration::from_secs(10));
            let grace = limit.saturating_sub(margin).max(Duration::from_secs(1));
            (
                grace,
                format!(
                    "KILL {} after TERM: {unit}'s TimeoutStopSec {} less {} for the launcher to finish first",
                    span(grace),
                    span(limit),
                    span(margin)
                ),
            )
        }
        (None, Some((None, unit))) => {
            // systemd never KILLs: neither does the launcher, in effect.
            let grace = Duration::from_secs(24 * 3600);
            (
                grace,
                format!("KILL {} after TERM: {unit}'s TimeoutStopSec is infinity", span(grace)),
            )
        }
        (None, None) => (
            default,
            format!(
                "KILL {} after TERM (the default: not under systemd; set launcher.grace_period_ms to match your supervisor's own stop timeout, e.g. docker stop's)",
                span(default)
            ),
        ),
    };
    Grace {
        period,
        why,
        systemd_kills_first: conflict,
    }
}

fn span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// The systemd service unit this process runs in, if any: systemd sets
/// `INVOCATION_ID` for a unit's processes, and the unit is the last
/// `.service` component of the process's cgroup.
fn systemd_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroup(&cgroup)
}

/// The service unit named by `/proc/self/cgroup`'s text.
pub fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .rfind(|c| {
            c.ends_with(".service")
                && c.len() > ".service".len()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@._:-\\".contains(&b))
        })
        .map(str::to_string)
}

/// `TimeoutStopUSec` of `unit`, from `systemctl show`: `Some(None)` for
/// infinity, `None` when it cannot be read.
fn stop_timeout(unit: &str) -> Option<Option<Duration>> {
    parse_span(&crate::systemd::show(unit, "TimeoutStopUSec")?)
}

/// A systemd time span as `systemctl show` prints it (`1min 30s`,
/// `90s`, `500ms`, `infinity`): `Some(None)` for infinity.
pub fn parse_span(text: &str) -> Option<Option<Duration>> {
    if text == "infinity" {
        return Some(None);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, unit) = part.split_at(split);
        let number: f64 = number.parse().ok()?;
        let unit_secs = match unit {
            "us" | "usec" => 1e-6,
            "ms" | "msec" => 1e-3,
            "s" | "sec" => 1.0,
            "min" | "m" => 60.0,
            "h" | "hr" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "M" => 2_629_800.0,
            "y" => 31_557_600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(number * unit_secs);
    }
    Some(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn systemd_spans() {
        assert_eq!(parse_span("1min 30s"), Some(Some(S(90))));
        assert_eq!(parse_span("90s"), Some(Some(S(90))));
        assert_eq!(parse_span("2min"), Some(Some(S(120))));
        assert_eq!(parse_span("1h 2min 3s"), Some(Some(S(3723))));
        assert_eq!(parse_span("500ms"), Some(Some(Duration::from_millis(500))));
        assert_eq!(parse_span("infinity"), Some(None));
        assert_eq!(parse_span(""), None);
        assert_eq!(parse_span("soon"), None);
    }

    #[test]
    fn the_unit_from_the_cgroup() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/plexmediaserver.service\n").as_deref(),
            Some("plexmediaserver.service")
        );
        assert_eq!(
            unit_of_cgroup("12:pids:/system.slice/plexmediaserver.service\n1:name=systemd:/system.slice/plexmediaserver.service/payload\n").as_deref(),
            Some("plexmediaserver.service")
        );
        assert_eq!(unit_of_cgroup("0::/user.slice/session-3.scope\n"), None);
        assert_eq!(unit_of_cgroup("0::/docker/abc\n"), None);
    }

    #[test]
    fn under_systemd_the_units_timeout_less_a_margin() {
        let unit = "plexmediaserver.service".to_string();
        let g = decide(S(10), None, Some((Some(S(90)), unit.clone())));
        assert_eq!(g.period, S(81));
        assert!(g.why.contains("TimeoutStopSec 90 s less 9 s"), "{}", g.why);
        assert!(!g.systemd_kills_first);
        let period = |g: Grace| g.period;
        assert_eq!(
            period(decide(S(10), None, Some((Some(S(300)), unit.clone())))),
            S(290)
        );
        assert_eq!(
            period(decide(S(10), None, Some((Some(S(5)), unit.clone())))),
            S(3)
        );
        assert_eq!(
            period(decide(S(10), None, Some((None, unit.clone())))),
            S(86_400)
        );
        // An explicit setting wins, with a warning when systemd KILLs first.
        let env = Source::Env("PLEX_PG_GRACE_PERIOD_MS".into());
        let g = decide(
            S(10),
            Some((S(120), env.clone())),
            Some((Some(S(90)), unit)),
        );
        assert_eq!(g.period, S(120));
        assert!(g.systemd_kills_first);
        assert!(
            g.why.contains("systemd KILLs the whole unit first")
                && g.why.contains("PLEX_PG_GRACE_PERIOD_MS"),
            "{}",
            g.why
        );
        let g = decide(S(10), Some((S(30), env)), None);
        assert_eq!(g.period, S(30));
        assert!(!g.systemd_kills_first);
        assert_eq!(period(decide(S(10), None, None)), S(10));
    }
}
