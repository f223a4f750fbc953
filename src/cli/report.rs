//! The end of a run: the `--json` summary and the exit code.

use serde::Serialize;

use super::exit;
use crate::transfer::Summary;
use crate::transport::Stats;

/// The `--json` object (issue contract: files, bytes, seconds, goodput,
/// retransmitted bytes, loss seen, smoothed RTT, path MTU, congestion
/// control; `exit_status` and `error` on every exit).
#[derive(Serialize)]
struct Json<'a> {
    exit_status: i32,
    /// `None` (null) on success; otherwise what went wrong, in one line.
    error: Option<String>,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    bytes_skipped: u64,
    seconds: f64,
    goodput_mbit_s: f64,
    retransmitted_bytes: u64,
    packets_sent: u64,
    packets_lost: u64,
    loss_rate: f64,
    srtt_ms: f64,
    path_mtu: u16,
    congestion_control: &'a str,
    /// The negotiated VSL suite, as `VSL_CIPHER` spells it.
    cipher: &'a str,
    /// Seconds the controller spent competing with a queue-filling flow.
    competing_seconds: f64,
    /// Seconds this side's sender spent sending and held back by each
    /// limit (congestion window, pacing, the peer's flow control, nothing to
    /// send): which end or the network set the pace.
    limited_seconds: Limited,
    failures: &'a [crate::transfer::Failure],
}

/// `LimitedTimes` in seconds, for `--json`.
#[derive(serde::Serialize)]
struct Limited {
    sending: f64,
    cwnd: f64,
    pacing: f64,
    flow: f64,
    send_buffer: f64,
    app: f64,
}

impl From<&crate::transport::LimitedTimes> for Limited {
    fn from(t: &crate::transport::LimitedTimes) -> Limited {
        Limited {
            sending: t.sending.as_secs_f64(),
            cwnd: t.cwnd.as_secs_f64(),
            pacing: t.pacing.as_secs_f64(),
            flow: t.flow.as_secs_f64(),
            send_buffer: t.send_buffer.as_secs_f64(),
            app: t.app.as_secs_f64(),
        }
    }
}

/// One line when a copy is done, as scp leaves one: what (the file's name,
/// or how many files), size, time and rate.
pub fn summary_line(program: &str, s: &Summary, last: &str) {
    let what = match s.files {
        1 if !last.is_empty() => last.to_string(),
        n => format!("{n} file{}", if n == 1 { "" } else { "s" }),
    };
    let secs = s.seconds.max(1e-3);
    let mut line = format!(
        "{program}: {what}: {} in {secs:.1} s ({})",
        indicatif::BinaryBytes(s.bytes + s.bytes_skipped),
        rate(s.bytes as f64 * 8.0 / secs)
    );
    if s.bytes_skipped > 0 {
        line.push_str(&format!(
            ", {} already there",
            indicatif::BinaryBytes(s.bytes_skipped)
        ));
    }
    eprintln!("{line}");
}

/// Bits per second, human-readable.
fn rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} Gbit/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.1} Mbit/s", bps / 1e6)
    } else {
        format!("{:.0} kbit/s", bps / 1e3)
    }
}

/// `-v`: the session's rate, loss, RTT and path MTU at the end.
pub fn log_stats(s: &Summary, st: &Stats) {
    tracing::info!(
        "{} bytes in {:.2} s ({}), {} packets sent, {} lost ({:.2} %), {} bytes retransmitted, \
         RTT {:.1} ms (min {:.1} ms), path MTU {}, congestion control {}",
        s.bytes,
        s.seconds,
        rate(s.bytes as f64 * 8.0 / s.seconds.max(1e-3)),
        st.packets_sent,
        st.packets_lost,
        st.packets_lost as f64 * 100.0 / st.packets_sent.max(1) as f64,
        st.stream_bytes_retransmitted,
        st.srtt.as_secs_f64() * 1e3,
        st.min_rtt.as_secs_f64() * 1e3,
        st.path_mtu,
        st.cc
    );
}

/// The `--json` object of a run that ended without a summary (an error
/// or an interrupt): `exit_status`, `error` and an empty `failures` list.
#[derive(Serialize)]
struct JsonError<'a> {
    exit_status: i32,
    error: &'a str,
    failures: &'a [crate::transfer::Failure],
}

/// Prints the `--json` object of a run that ended with `error`.
pub fn json_error(code: i32, error: &str) {
    let j = JsonError {
        exit_status: code,
        error,
        failures: &[],
    };
    if let Ok(s) = serde_json::to_string(&j) {
        println!("{s}");
    }
}

/// The `--json` object of a run that ended with `summary` and `stats`,
/// exit status `code` and `error` (also what the ssh-started far side
/// writes to its diagnostic log, `cli::farlog`).
pub fn json_text(
    code: i32,
    error: Option<String>,
    summary: &Summary,
    stats: &Stats,
) -> serde_json::Result<String> {
    let secs = summary.seconds.max(1e-9);
    let j = Json {
        exit_status: code,
        error,
        files: summary.files,
        dirs: summary.dirs,
        symlinks: summary.symlinks,
        bytes: summary.bytes,
        bytes_skipped: summary.bytes_skipped,
        seconds: summary.seconds,
        goodput_mbit_s: summary.bytes as f64 * 8.0 / secs / 1e6,
        retransmitted_bytes: stats.stream_bytes_retransmitted,
        packets_sent: stats.packets_sent,
        packets_lost: stats.packets_lost,
        loss_rate: stats.packets_lost as f64 / stats.packets_sent.max(1) as f64,
        srtt_ms: stats.srtt.as_secs_f64() * 1e3,
        path_mtu: stats.path_mtu,
        congestion_control: stats.cc,
        cipher: stats.suite.map_or("", crate::vsl::Suite::cipher_name),
        competing_seconds: stats.cc_time_competing.as_secs_f64(),
        limited_seconds: Limited::from(&stats.limited),
        failures: &summary.failures,
    };
    serde_json::to_string(&j)
}

/// Prints the summary (JSON on stdout if asked, failures on stderr, each
/// with the `program:` prefix) and returns the exit code.
pub fn finish(program: &str, summary: &Summary, stats: &Stats, json: bool, quiet: bool) -> i32 {
    for f in &summary.failures {
        eprintln!("{program}: {}: {}", f.path, f.message);
    }
    let code = if summary.is_complete() {
        exit::SUCCESS
    } else {
        exit::PARTIAL
    };
    let failed = summary.failures.len();
    let error = (failed > 0).then(|| {
        format!(
            "{failed} of {} entries failed",
            summary.files + summary.dirs + summary.symlinks + failed as u64
        )
    });
    if json {
        match json_text(code, error.clone(), summary, stats) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("{program}: cannot write the JSON summary: {e}"),
        }
    } else if let (false, Some(e)) = (quiet, &error) {
        eprintln!("{program}: {e}");
    }
    code
}
