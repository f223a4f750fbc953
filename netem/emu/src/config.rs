//! Command-line link parameters: units, per-direction sections, and the
//! queue size rules. Parsing only; nothing here touches the system.

use std::time::Duration;

use crate::loss::LossModel;
use crate::model::DirConfig;

/// How the bottleneck queue size was asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueSpec {
    /// A fixed number of bytes.
    Bytes(u64),
    /// Multiples of the bandwidth-delay product (rate x RTT of the link).
    Bdp(f64),
    /// This much time at the link rate.
    Time(Duration),
    /// This many full-size (MTU) packets.
    Packets(u64),
}

/// Both directions of the link as given on the command line, before the
/// queue sizes are resolved.
#[derive(Debug, Clone)]
pub struct LinkArgs {
    /// Client -> server parameters.
    pub c2s: DirConfig,
    /// Server -> client parameters.
    pub s2c: DirConfig,
    /// Queue size rule for each direction (c2s, s2c).
    pub queue: [Option<QueueSpec>; 2],
}

/// Packets that every default queue can hold at least.
pub const MIN_QUEUE_PACKETS: u64 = 100;

/// Parse a rate: `100mbit`, `1gbit`, `500kbit`, `20M` (bits), `1000000` (bit/s).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let l = s.trim().to_ascii_lowercase();
    let (num, mult) = split_unit(&l);
    let mult = match mult {
        "" | "bit" | "bps" => 1.0,
        "k" | "kbit" | "kbps" => 1e3,
        "m" | "mbit" | "mbps" => 1e6,
        "g" | "gbit" | "gbps" => 1e9,
        _ => return Err(format!("bad rate unit in {s:?} (use kbit, mbit, gbit)")),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad rate {s:?}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("bad rate {s:?}"));
    }
    Ok((v * mult) as u64)
}

/// Parse a duration: `50ms`, `200us`, `1.5s`, `0` (plain numbers are ms).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let l = s.trim().to_ascii_lowercase();
    let (num, unit) = split_unit(&l);
    let mult = match unit {
        "" | "ms" => 1e-3,
        "s" => 1.0,
        "us" => 1e-6,
        "ns" => 1e-9,
        _ => return Err(format!("bad time unit in {s:?} (use s, ms, us)")),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    if !(v.is_finite() && (0.0..1e6).contains(&v)) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Parse a probability: `1%`, `0.5%`, or a fraction `0.01`.
pub fn parse_prob(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = if let Some(p) = t.strip_suffix('%') {
        p.parse::<f64>()
            .map_err(|_| format!("bad percentage {s:?}"))?
            / 100.0
    } else {
        t.parse::<f64>()
            .map_err(|_| format!("bad probability {s:?}"))?
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("probability {s:?} out of range"));
    }
    Ok(v)
}

/// Parse a queue size: `64kb`, `1mb`, `150000` (bytes), `1bdp`, `50ms`, `100pkt`.
pub fn parse_queue(s: &str) -> Result<QueueSpec, String> {
    let l = s.trim().to_ascii_lowercase();
    let (num, unit) = split_unit(&l);
    let v: f64 = num.parse().map_err(|_| format!("bad queue size {s:?}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("bad queue size {s:?}"));
    }
    Ok(match unit {
        "" | "b" => QueueSpec::Bytes(v as u64),
        "k" | "kb" => QueueSpec::Bytes((v * 1e3) as u64),
        "kib" => QueueSpec::Bytes((v * 1024.0) as u64),
        "m" | "mb" => QueueSpec::Bytes((v * 1e6) as u64),
        "mib" => QueueSpec::Bytes((v * 1048576.0) as u64),
        "bdp" => QueueSpec::Bdp(v),
        "p" | "pkt" | "pkts" => QueueSpec::Packets(v as u64),
        _ => QueueSpec::Time(parse_duration(s)?),
    })
}

fn split_unit(s: &str) -> (&str, &str) {
    let i = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..i], &s[i..])
}

impl LinkArgs {
    /// No impairment at all, both ways.
    pub fn new() -> Self {
        let s2c = DirConfig {
            seed: 2,
            ..DirConfig::default()
        };
        LinkArgs {
            c2s: DirConfig::default(),
            s2c,
            queue: [None, None],
        }
    }

    /// Apply one `--flag value` to the directions selected by `dirs`
    /// ([c2s, s2c]). Returns Ok(false) if the flag is not a link flag.
    pub fn apply(&mut self, flag: &str, val: &str, dirs: [bool; 2]) -> Result<bool, String> {
        let targets = [dirs[0], dirs[1]];
        for (i, on) in targets.iter().enumerate() {
            if !on {
                continue;
            }
            let d = if i == 0 { &mut self.c2s } else { &mut self.s2c };
            match flag {
                "--rate" => {
                    let r = parse_rate(val)?;
                    d.rate_bps = (r > 0).then_some(r);
                }
                "--delay" => d.delay = parse_duration(val)?,
                "--rtt" => d.delay = parse_duration(val)? / 2,
                "--jitter" => d.jitter = parse_duration(val)?,
                "--loss" => {
                    let p = parse_prob(val)?;
                    d.loss = if p > 0.0 {
                        LossModel::Random(p)
                    } else {
                        LossModel::None
                    };
                }
                "--ge-loss" => {
                    // MEAN:BURST, e.g. 5%:4
                    let (m, b) = val
                        .split_once(':')
                        .ok_or_else(|| format!("--ge-loss wants MEAN:BURST, got {val:?}"))?;
                    let burst: f64 = b.parse().map_err(|_| format!("bad burst length {b:?}"))?;
                    if !(1.0..=1e6).contains(&burst) {
                        return Err(format!("burst length {b:?} out of range"));
                    }
                    d.loss = LossModel::bursty(parse_prob(m)?, burst);
                }
                "--gemodel" => {
                    // p,r[,1-h[,1-k]] as in netem
                    let v: Vec<&str> = val.split(',').collect();
                    if v.len() < 2 || v.len() > 4 {
                        return Err(format!("--gemodel wants p,r[,1-h[,1-k]], got {val:?}"));
                    }
                    d.loss = LossModel::GilbertElliott {
                        p: parse_prob(v[0])?,
                        r: parse_prob(v[1])?,
                        loss_bad: v.get(2).map_or(Ok(1.0), |s| parse_prob(s))?,
                        loss_good: v.get(3).map_or(Ok(0.0), |s| parse_prob(s))?,
                    };
                }
                "--dup" => d.duplicate = parse_prob(val)?,
                "--reorder" => d.reorder = parse_prob(val)?,
                "--reorder-delay" => d.reorder_delay = parse_duration(val)?,
                "--queue" => self.queue[i] = Some(parse_queue(val)?),
                "--max-inflight" => {
                    d.max_inflight_bytes = match parse_queue(val)? {
                        QueueSpec::Bytes(b) => b,
                        _ => return Err("--max-inflight wants bytes".into()),
                    }
                }
                "--seed" => {
                    let s: u64 = val.parse().map_err(|_| format!("bad seed {val:?}"))?;
                    d.seed = s.wrapping_mul(2).wrapping_add(i as u64);
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Turn queue rules into byte counts (BDP uses the round trip: this
    /// direction's delay plus the other's). Default: 1 BDP, at least
    /// `MIN_QUEUE_PACKETS` full packets.
    pub fn resolve(mut self, mtu: u64) -> (DirConfig, DirConfig) {
        let rtt = self.c2s.delay + self.s2c.delay;
        for i in 0..2 {
            let spec = self.queue[i];
            let d = if i == 0 { &mut self.c2s } else { &mut self.s2c };
            let rate = d.rate_bps.unwrap_or(0) as f64;
            let bdp = rate / 8.0 * rtt.as_secs_f64();
            d.queue_bytes = match spec {
                None => (bdp as u64).max(MIN_QUEUE_PACKETS * mtu),
                Some(QueueSpec::Bytes(b)) => b,
                Some(QueueSpec::Bdp(f)) => (bdp * f) as u64,
                Some(QueueSpec::Time(t)) => (rate / 8.0 * t.as_secs_f64()) as u64,
                Some(QueueSpec::Packets(n)) => n * mtu,
            }
            .max(mtu);
        }
        (self.c2s, self.s2c)
    }
}

impl Default for LinkArgs {
    fn default() -> Self {
        Self::new()
    }
}

/// One line describing a direction, for logs and the lab's validation.
pub fn describe(d: &DirConfig) -> String {
    let rate = d.rate_bps.map_or("unlimited".to_string(), |r| {
        format!("{:.3}Mbit/s", r as f64 / 1e6)
    });
    format!(
        "rate={} queue={}B delay={:.3}ms jitter={:.3}ms loss={:.4}% ({:?}) dup={}% reorder={}%",
        rate,
        d.queue_bytes,
        d.delay.as_secs_f64() * 1e3,
        d.jitter.as_secs_f64() * 1e3,
        d.loss.mean_loss() * 100.0,
        d.loss,
        d.duplicate * 100.0,
        d.reorder * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1Gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("2.5M"), Ok(2_500_000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("0.1"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-3ms").is_err());
        assert_eq!(parse_prob("1%"), Ok(0.01));
        assert_eq!(parse_prob("0.25"), Ok(0.25));
        assert!(parse_prob("150%").is_err());
        assert_eq!(parse_queue("1bdp"), Ok(QueueSpec::Bdp(1.0)));
        assert_eq!(parse_queue("64kb"), Ok(QueueSpec::Bytes(64_000)));
        assert_eq!(parse_queue("100pkt"), Ok(QueueSpec::Packets(100)));
        assert_eq!(
            parse_queue("20ms"),
            Ok(QueueSpec::Time(Duration::from_millis(20)))
        );
    }

    #[test]
    fn sections_and_queue_resolution() {
        let mut a = LinkArgs::new();
        assert_eq!(a.apply("--rate", "100mbit", [true, true]), Ok(true));
        assert_eq!(a.apply("--rtt", "100ms", [true, true]), Ok(true));
        assert_eq!(a.apply("--loss", "1%", [true, false]), Ok(true));
        assert_eq!(a.apply("--queue", "0.5bdp", [false, true]), Ok(true));
        assert_eq!(a.apply("--bogus", "1", [true, true]), Ok(false));
        let (c2s, s2c) = a.resolve(1500);
        assert_eq!(c2s.delay, Duration::from_millis(50));
        assert_eq!(c2s.loss, LossModel::Random(0.01));
        assert_eq!(s2c.loss, LossModel::None);
        assert_eq!(c2s.queue_bytes, 1_250_000);
        assert_eq!(s2c.queue_bytes, 625_000);
    }

    #[test]
    fn default_queue_has_a_floor() {
        let mut a = LinkArgs::new();
        a.apply("--rate", "1gbit", [true, true]).unwrap();
        a.apply("--rtt", "0.2ms", [true, true]).unwrap();
        let (c2s, _) = a.resolve(1500);
        assert_eq!(c2s.queue_bytes, 150_000);
    }
}
