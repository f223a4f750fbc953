//! vfer-send: copy files to (or run programs on) another host over VFER.
fn main() {
    eprintln!("vfer-send: not implemented yet");
    std::process::exit(2);
}
