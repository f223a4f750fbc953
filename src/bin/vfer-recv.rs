//! vfer-recv: receive files from, or serve, vfer peers.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--server") {
        std::process::exit(server_main(args));
    }
    eprintln!("vfer-recv: not implemented yet");
    std::process::exit(2);
}

/// `vfer-recv --server ...`: the ssh-started (or local-mode) server side.
/// Must run before any tokio runtime or thread exists: it forks once the
/// client is connected (see `vfer::bootstrap::ssh_server::run`). Argument
/// errors are reported only after the secret was read (exit 21).
fn server_main(args: Vec<String>) -> i32 {
    let options = vfer::bootstrap::ssh_server::parse_args(args);
    vfer::bootstrap::ssh_server::run("vfer-recv", options, |session| async move {
        // Placeholder until the transfer layer is wired in: end the session.
        session.close(0, "no transfer service yet").await;
    })
}
