//! Options both `vfer-send` and `vfer-recv` take.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::service::request::SessionOptions;

use super::rate::parse_rate;
use crate::transport::cc::CcChoice;
use crate::transport::Config;
use crate::vsl::CipherChoice;

/// Options shared by both programs (scp/rsync spellings where they exist).
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Copy directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Preserve modification times and modes.
    #[arg(short = 'p', long)]
    pub preserve: bool,
    /// Cap the sending rate, in bits per second (e.g. 50M, 1.5G, 800K).
    #[arg(short = 'l', long = "limit", value_name = "RATE", value_parser = parse_rate)]
    pub limit: Option<u64>,
    /// Send at exactly this rate (bits per second) instead of probing:
    /// for dedicated links only.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// No progress bar, no warnings.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Log what happens (-v info, -vv debug, -vvv trace) on stderr.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,
    /// Print a JSON summary on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Draw the progress bar even when stderr is not a terminal.
    #[arg(long, conflicts_with = "quiet")]
    pub progress: bool,
    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// The ssh command to start the far side with, e.g. 'ssh -p 2222 -i key'.
    #[arg(short = 'e', long = "rsh", value_name = "COMMAND")]
    pub rsh: Option<String>,
    /// The vfer program on the far side (default: vfer-recv or vfer-send on its PATH).
    #[arg(long, value_name = "PROGRAM")]
    pub remote_path: Option<String>,
    /// Run the far side as a local child process (no ssh): a transfer on this
    /// machine over loopback UDP, e.g. to try vfer out.
    #[arg(long)]
    pub local: bool,
    /// Key file for a `vfer-recv --listen` daemon (key-file mode, vfer:// URLs).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// UDP ports the far side may bind, e.g. 60000-60100 (for firewalls).
    #[arg(long, value_name = "A-B")]
    pub port_range: Option<String>,
    /// Packet protection: auto (the fastest suite both ends have, AES-256-GCM
    /// today), aes-256-gcm, or vsl1 (AES-256-CTR + HMAC-SHA256, the original
    /// suite). A client offers only this suite; a server accepts only it.
    #[arg(long, value_name = "SUITE", default_value = "auto")]
    pub cipher: CipherChoice,
    /// Give up when the peer is silent this long (seconds; 0 = never).
    /// Keep-alives go out at a third of it (at most every 5 s), so a
    /// healthy idle session never reaches it.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Program modes (--exec, --forward, --forward-from, --ucspi): end a
    /// session after MS milliseconds with no data either way (s6's -K,
    /// minssl-tunnel's idle timeout; the client exits 99). 0 = never, the
    /// default.
    #[arg(
        short = 'K',
        long = "kill-idle",
        value_name = "MS",
        default_value_t = 0
    )]
    pub kill_idle: u64,
    /// Program modes (--exec, also over ssh; --forward, --forward-from,
    /// --ucspi; give it to both ends): carry the stream in fixed 1,024-byte
    /// records both ways, so the lengths of what is written do not show
    /// (spiped's padding; costs bandwidth and CPU, see README). A daemon
    /// with --pad refuses clients without it. Not for file transfers.
    #[arg(long)]
    pub pad: bool,
    /// Print shell completions (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<String>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,
    /// Do not start from what earlier transfers measured about this path,
    /// nor remember what this one measures (the cache is
    /// $XDG_CACHE_HOME/vfer/paths, else ~/.cache/vfer/paths).
    #[arg(long)]
    pub no_path_cache: bool,
    /// The path, when known (RATE_BYTES_PER_S,MIN_RTT_US,LOSS, e.g.
    /// 118750000,1000000,0.05): start from it as from a remembered path.
    /// A client passes its hint to the ssh-started far side this way.
    #[arg(long, hide = true, value_name = "HINT")]
    pub path_hint: Option<String>,
    /// Internal: started by ssh (or --local) as the far side.
    #[arg(long, hide = true)]
    pub server: bool,
    /// With --server: exit (status 20) if no client arrives within SECS.
    #[arg(long, hide = true, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub accept_timeout: Option<u64>,
    /// Diagnostic: with --server, echo the stream back instead of transferring.
    #[arg(long, hide = true)]
    pub echo: bool,
    /// Challenge-response mode (vfer://USER@HOST daemons).
    #[command(flatten)]
    pub login: LoginArgs,
}

impl Common {
    /// `-K`: how long a program session may carry no data, `None` = never.
    pub fn kill_idle(&self) -> Option<Duration> {
        crate::tunnel::idle::kill_after(self.kill_idle)
    }

    /// The transport settings these options ask for.
    pub fn transport_config(&self) -> Config {
        Config {
            cc: self.rate.map_or(CcChoice::Vfer, CcChoice::Fixed),
            rate_cap: self.limit,
            idle_timeout: crate::tunnel::idle::peer_timeout(self.timeout),
            keepalive: crate::tunnel::idle::keepalive(self.timeout, Config::default().keepalive),
            // A silent peer during the handshake is also "silent this long",
            // but never wait longer for an answer than the default.
            handshake_timeout: Config::default()
                .handshake_timeout
                .min(crate::tunnel::idle::peer_timeout(self.timeout)),
            cipher: self.cipher,
            path_hint: self
                .path_hint
                .as_deref()
                .and_then(crate::transport::pathcache::PathHint::from_arg),
            ..Config::default()
        }
    }

    /// The options a daemon session negotiates on the wire (§5): the
    /// daemon sends no faster than `-l` (and `--rate`).
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            rate_cap: self.limit,
            fixed_rate: self.rate,
            pad: self.pad,
        }
    }

    /// A usage error if `--pad` was given to `mode`, which does not pad
    /// (file transfers).
    pub fn refuse_pad(&self, mode: &str) -> anyhow::Result<()> {
        if self.pad {
            return Err(super::exit::usage(format!(
                "--pad is for program modes (--exec, --forward, --forward-from), not {mode}"
            )));
        }
        Ok(())
    }

    /// How this command line reaches its far side (`-e`, `--remote-path`,
    /// `-4`/`-6`, `--key-file`, the transport options).
    pub fn reach(&self) -> crate::service::connect::Reach {
        use crate::bootstrap::Family;
        crate::service::connect::Reach {
            rsh: self.rsh.clone(),
            remote_path: self.remote_path.clone(),
            family: if self.ipv4 {
                Some(Family::V4)
            } else if self.ipv6 {
                Some(Family::V6)
            } else {
                None
            },
            key_file: self.key_file.clone(),
            config: self.transport_config(),
        }
    }

    /// Options the far side must also apply, as its command-line words.
    pub fn remote_flags(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.recursive {
            w.push("-r".to_string());
        }
        if self.preserve {
            w.push("-p".to_string());
        }
        if let Some(r) = self.limit {
            w.push("--limit".to_string());
            w.push((r * 8).to_string());
        }
        if let Some(r) = self.rate {
            w.push("--rate".to_string());
            w.push((r * 8).to_string());
        }
        if let Some(p) = &self.port_range {
            w.push("--port-range".to_string());
            w.push(p.clone());
        }
        w.push("--timeout".to_string());
        w.push(self.timeout.to_string());
        w
    }
}

/// Client options of challenge-response mode.
#[derive(Args, Debug, Clone, Default)]
pub struct LoginArgs {
    /// vfer://USER@HOST daemons: read the password from the first line of
    /// FILE (mode 0600) instead of asking (also: VFER_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// vfer://USER@HOST daemons: trust a daemon's host key seen for the
    /// first time and pin it in ~/.config/vfer/known_hosts without asking.
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// vfer://USER@HOST daemons: the daemon's host key fingerprint
    /// (SHA256:..., printed by the daemon when it starts); known_hosts is
    /// then neither read nor written.
    #[arg(long, value_name = "SHA256:...")]
    pub host_key_fingerprint: Option<String>,
}
