//! vfer-recv: receive files from, or serve, vfer peers.
fn main() {
    eprintln!("vfer-recv: not implemented yet");
    std::process::exit(2);
}
