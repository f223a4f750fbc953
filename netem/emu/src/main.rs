//! vfer-netem: an IP-level link emulator for the vfer lab (see
//! netem/README.md). `run` joins two network namespaces through TUN
//! devices and an emulated link; `probe-send` / `probe-recv` measure a link
//! from the outside; `show` prints how a command line is understood.

mod config;
mod forward;
mod loss;
mod model;
mod probe;
mod tun;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{describe, parse_duration, parse_rate, LinkArgs};
use forward::{format_stats, DirStats, Direction};

const USAGE: &str = "\
vfer-netem: userspace link emulator between two network namespaces

USAGE:
  vfer-netem run --client-ns NS --server-ns NS [--dev NAME] [--mtu N]
                 [--stats FILE] [LINK...] [--c2s LINK...] [--s2c LINK...]
  vfer-netem show [LINK...]                 print the resolved link and exit
  vfer-netem probe-send --to IP:PORT --rate R [--size B] [--count N] [--rt-prio N]
  vfer-netem probe-recv --bind IP:PORT [--idle D] [--timeout D] [--rt-prio N]

LINK (both directions, or only the one after --c2s / --s2c / --both):
  --rate R          bottleneck rate: 100mbit, 1gbit, 500kbit (0 = unlimited)
  --delay D         one-way delay: 50ms, 200us      --rtt D   delay = D/2
  --jitter D        uniform +-D, never reorders
  --loss P          random loss on the wire: 1% or 0.01
  --ge-loss M:B     bursty Gilbert-Elliott loss, mean M, mean burst B packets
  --gemodel p,r[,1-h[,1-k]]   netem's gemodel parameters
  --dup P           duplicate packets
  --reorder P       hold packets back --reorder-delay D (default 2ms)
  --queue Q         drop-tail queue: bytes (64kb, 1mb), 1bdp, 20ms, 100pkt
                    (default: 1 BDP, at least 100 packets)
  --seed N          PRNG seed

run options: --rt-prio N  run the link threads SCHED_FIFO at N (the lab uses 10)

Sends SIGTERM/SIGINT to stop; prints counters on exit, writes them to
--stats FILE every second.
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("show") => cmd_show(&args[1..]),
        Some("probe-send") => cmd_probe_send(&args[1..]),
        Some("probe-recv") => cmd_probe_recv(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("missing or unknown command\n\n{USAGE}")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfer-netem: {e}");
            ExitCode::from(2)
        }
    }
}

/// Options that are not link parameters, by name.
struct Opts {
    pairs: Vec<(String, String)>,
}

impl Opts {
    fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Split arguments into link parameters (applied to `link`) and other
/// `--name value` options (listed in `known`).
fn parse_args(args: &[String], known: &[&str], link: &mut LinkArgs) -> Result<Opts, String> {
    let mut dirs = [true, true];
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "--c2s" => dirs = [true, false],
            "--s2c" => dirs = [false, true],
            "--both" => dirs = [true, true],
            _ => {
                let val = args
                    .get(i + 1)
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                if known.contains(&flag) {
                    pairs.push((flag.to_string(), val.clone()));
                } else if !link.apply(flag, val, dirs)? {
                    return Err(format!("unknown option {flag}\n\n{USAGE}"));
                }
                i += 1;
            }
        }
        i += 1;
    }
    Ok(Opts { pairs })
}

fn parse_mtu(o: &Opts) -> Result<usize, String> {
    let mtu: usize = o
        .get("--mtu")
        .unwrap_or("1500")
        .parse()
        .map_err(|_| "bad --mtu".to_string())?;
    if !(576..=65_535).contains(&mtu) {
        return Err("--mtu out of range (576..65535)".into());
    }
    Ok(mtu)
}

fn cmd_show(args: &[String]) -> Result<(), String> {
    let mut link = LinkArgs::new();
    let o = parse_args(args, &["--mtu"], &mut link)?;
    let (c2s, s2c) = link.resolve(parse_mtu(&o)? as u64);
    println!("c2s {}", describe(&c2s));
    println!("s2c {}", describe(&s2c));
    Ok(())
}

fn cmd_run(args: &[String]) -> Result<(), String> {
    let mut link = LinkArgs::new();
    let o = parse_args(
        args,
        &[
            "--client-ns",
            "--server-ns",
            "--dev",
            "--mtu",
            "--stats",
            "--rt-prio",
        ],
        &mut link,
    )?;
    let mtu = parse_mtu(&o)?;
    let (c2s, s2c) = link.resolve(mtu as u64);
    let cns = o.get("--client-ns").ok_or("--client-ns is required")?;
    let sns = o.get("--server-ns").ok_or("--server-ns is required")?;
    let dev = o.get("--dev").unwrap_or("vfer0");
    let stats_file = o.get("--stats").map(str::to_string);
    let rt_prio: i32 = o
        .get("--rt-prio")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "bad --rt-prio")?;
    if !(0..=99).contains(&rt_prio) {
        return Err("--rt-prio out of range (0..99)".into());
    }

    // SAFETY: plain prctl / signal calls; the handler only stores an atomic.
    unsafe {
        // Wake up within a microsecond of the deadline, not 50 us late.
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let ctun = tun::Tun::create_in(cns, dev).map_err(|e| format!("TUN {dev} in {cns}: {e}"))?;
    let stun = tun::Tun::create_in(sns, dev).map_err(|e| format!("TUN {dev} in {sns}: {e}"))?;
    println!("c2s {}", describe(&c2s));
    println!("s2c {}", describe(&s2c));
    println!(
        "ready client={cns}/{} server={sns}/{} pid={}",
        ctun.name(),
        stun.name(),
        std::process::id()
    );

    let stats = [
        Arc::new(Mutex::new(DirStats::default())),
        Arc::new(Mutex::new(DirStats::default())),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let dirs = [
        Direction {
            name: "c2s",
            input: ctun.raw(),
            output: stun.raw(),
            cfg: c2s,
            mtu,
        },
        Direction {
            name: "s2c",
            input: stun.raw(),
            output: ctun.raw(),
            cfg: s2c,
            mtu,
        },
    ];
    let mut handles = Vec::new();
    for (d, st) in dirs.into_iter().zip(stats.iter()) {
        let (stop, st) = (stop.clone(), st.clone());
        let name = d.name;
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // SAFETY: per-thread timer slack, as above.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
                if rt_prio > 0 {
                    set_realtime(rt_prio);
                }
                forward::run(d, stop, st)
            })
            .map_err(|e| format!("spawn: {e}"))?;
        handles.push(h);
    }
    let mut last = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Some(f) = &stats_file {
                write_stats(f, &stats);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    if let Some(f) = &stats_file {
        write_stats(f, &stats);
    }
    for (name, st) in ["c2s", "s2c"].iter().zip(stats.iter()) {
        if let Ok(s) = st.lock() {
            println!("{}", format_stats(name, &s));
        }
    }
    Ok(())
}

/// Make the calling thread SCHED_FIFO at `prio`: the link must not be
/// starved by the endpoints or other work on a small, shared machine (a
/// starved emulator adds delay and drops packets in the TUN queue). The
/// kernel's RT throttling still leaves other tasks 5% of each CPU.
fn set_realtime(prio: i32) {
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: sched_setscheduler on the calling thread with a valid param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        eprintln!(
            "vfer-netem: SCHED_FIFO {prio} not allowed ({}); running at normal priority",
            std::io::Error::last_os_error()
        );
    }
}

/// Probes may run SCHED_FIFO too (below the link's priority), so that a busy
/// machine starves neither the pacing nor the receiving socket.
fn probe_priority(o: &Opts) -> Result<(), String> {
    let p: i32 = o
        .get("--rt-prio")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "bad --rt-prio")?;
    if !(0..=99).contains(&p) {
        return Err("--rt-prio out of range (0..99)".into());
    }
    if p > 0 {
        set_realtime(p);
    }
    Ok(())
}

fn write_stats(path: &str, stats: &[Arc<Mutex<DirStats>>; 2]) {
    let mut text = String::new();
    for (name, st) in ["c2s", "s2c"].iter().zip(stats.iter()) {
        if let Ok(s) = st.lock() {
            text.push_str(&format_stats(name, &s));
            text.push('\n');
        }
    }
    let tmp = format!("{path}.tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

fn cmd_probe_send(args: &[String]) -> Result<(), String> {
    let o = parse_args(
        args,
        &["--to", "--rate", "--size", "--count", "--rt-prio"],
        &mut LinkArgs::new(),
    )?;
    let to: SocketAddr = o
        .get("--to")
        .ok_or("--to is required")?
        .parse()
        .map_err(|_| "bad --to address")?;
    let rate = parse_rate(o.get("--rate").ok_or("--rate is required")?)?;
    let size: usize = o
        .get("--size")
        .unwrap_or("200")
        .parse()
        .map_err(|_| "bad --size")?;
    let count: u64 = o
        .get("--count")
        .unwrap_or("10000")
        .parse()
        .map_err(|_| "bad --count")?;
    probe_priority(&o)?;
    let r = probe::send(to, rate, size, count).map_err(|e| format!("probe-send: {e}"))?;
    println!("{r}");
    Ok(())
}

fn cmd_probe_recv(args: &[String]) -> Result<(), String> {
    let o = parse_args(
        args,
        &["--bind", "--idle", "--timeout", "--rt-prio"],
        &mut LinkArgs::new(),
    )?;
    let bind: SocketAddr = o
        .get("--bind")
        .ok_or("--bind is required")?
        .parse()
        .map_err(|_| "bad --bind address")?;
    let idle = parse_duration(o.get("--idle").unwrap_or("3s"))?;
    let timeout = parse_duration(o.get("--timeout").unwrap_or("60s"))?;
    probe_priority(&o)?;
    let r = probe::recv(bind, idle, timeout).map_err(|e| format!("probe-recv: {e}"))?;
    println!("{r}");
    Ok(())
}
