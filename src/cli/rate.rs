//! Rates on the command line: `50M` means 50 Mbit/s, as scp's `-l` counts
//! bits (scp uses Kbit/s units; vfer accepts K, M, G suffixes).

/// Parses a rate in bits per second (`500K`, `50M`, `1.5G`, `100000`) and
/// returns bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad rate {s:?}: expected bits per second like 50M, 1.5G or 800K"))?;
    let bits = v * mult;
    if !(bits.is_finite() && bits >= 8_000.0) {
        return Err(format!("bad rate {s:?}: must be at least 8K (8 kbit/s)"));
    }
    Ok((bits / 8.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50M"), Ok(6_250_000));
        assert_eq!(parse_rate("1.5G"), Ok(187_500_000));
        assert_eq!(parse_rate("800k"), Ok(100_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
    }
}
