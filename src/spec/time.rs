//! Durations and event-time windows as a job writes them (`"5s"`, `"-1m"`,
//! `"hopping 1h every 5m"`), resolved into the operators' window kinds.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use vigil_operators::WindowKind;

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An event-time window as a job declares it (see `vigil_operators::kinds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Sliding(Duration),
    Tumbling(Duration),
    Hopping {
        size: Duration,
        hop: Duration,
    },
    /// Events less than `gap` apart share a session.
    Session {
        gap: Duration,
    },
}

impl Window {
    /// `1h` or `sliding 1h`, `tumbling 1d`, `hopping 1h every 5m`, `session 30m`.
    pub fn parse(text: &str) -> Result<Window> {
        let t = text.trim();
        let (kind, rest) = t.split_once(char::is_whitespace).unwrap_or(("sliding", t));
        let rest = rest.trim();
        Ok(match kind {
            "sliding" => Window::Sliding(parse_duration(rest)?),
            "tumbling" => Window::Tumbling(parse_duration(rest)?),
            "hopping" => {
                let (size, hop) = rest.split_once(" every ").with_context(|| format!("`{text}`: a hopping window is `hopping SIZE every HOP`"))?;
                Window::Hopping { size: parse_duration(size)?, hop: parse_duration(hop)? }
            }
            "session" => Window::Session { gap: parse_duration(rest)? },
            _ => Window::Sliding(parse_duration(t).with_context(|| format!("`{text}`: windows are sliding, tumbling, hopping or session"))?),
        })
    }

    /// The operator's kind and size (ms), validated.
    pub(super) fn resolve(self) -> Result<(WindowKind, i64)> {
        let positive = |d: Duration, what: &str| match duration_ms(d) {
            ms if ms > 0 => Ok(ms),
            _ => bail!("the {what} must be positive"),
        };
        Ok(match self {
            Window::Sliding(w) => (WindowKind::Sliding, positive(w, "window")?),
            Window::Tumbling(w) => (WindowKind::Tumbling, positive(w, "window")?),
            Window::Hopping { size, hop } => {
                let (size, hop) = (positive(size, "window")?, positive(hop, "hop")?);
                if hop > size {
                    bail!("the hop ({hop} ms) is longer than the window ({size} ms): events between windows would count nowhere");
                }
                (WindowKind::Hopping { hop_ms: hop }, size)
            }
            Window::Session { gap } => (WindowKind::Session { gap_ms: positive(gap, "session gap")? }, 0),
        })
    }
}

/// A duration that may be negative (`-5m`), in milliseconds.
pub fn parse_signed_ms(text: &str) -> Result<i64> {
    let t = text.trim();
    match t.strip_prefix('-') {
        Some(rest) => Ok(-duration_ms(parse_duration(rest)?)),
        None => Ok(duration_ms(parse_duration(t)?)),
    }
}

/// Parses durations such as `500ms`, `5s`, `1m`, `1h`, `1d`, and `sliding 1h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim().strip_prefix("sliding").unwrap_or(text).trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().with_context(|| format!("bad duration `{text}`"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        u => bail!("bad duration unit `{u}` in `{text}`"),
    };
    Ok(Duration::from_millis(n.checked_mul(ms).context("duration overflows")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("sliding 1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(Window::parse("1h").unwrap(), Window::Sliding(Duration::from_secs(3600)));
        assert_eq!(Window::parse("tumbling 1d").unwrap(), Window::Tumbling(Duration::from_secs(86_400)));
        assert_eq!(Window::parse("hopping 1h every 5m").unwrap(), Window::Hopping { size: Duration::from_secs(3600), hop: Duration::from_secs(300) });
        assert_eq!(Window::parse("session 30m").unwrap(), Window::Session { gap: Duration::from_secs(1800) });
        assert!(Window::parse("hopping 1h").is_err());
        assert!(Window::Hopping { size: Duration::from_secs(60), hop: Duration::from_secs(120) }.resolve().is_err());
        assert!(Window::parse("galactic 1h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
