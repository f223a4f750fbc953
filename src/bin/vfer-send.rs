//! vfer-send: copy files to (or run programs on) another host over VFER.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--server") {
        std::process::exit(server_main(args));
    }
    eprintln!("vfer-send: not implemented yet");
    std::process::exit(2);
}

/// `vfer-send --server ...`: the ssh-started (or local-mode) server side.
/// Must run before any tokio runtime or thread exists: it forks once the
/// client is connected (see `vfer::bootstrap::ssh_server::run`). Argument
/// errors are reported only after the secret was read (exit 21).
fn server_main(args: Vec<String>) -> i32 {
    let options = vfer::bootstrap::ssh_server::parse_args(args);
    vfer::bootstrap::ssh_server::run("vfer-send", options, |session| async move {
        // Placeholder until the transfer layer is wired in: end the session.
        session.close(0, "no transfer service yet").await;
    })
}
