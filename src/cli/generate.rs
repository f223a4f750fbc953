//! `--completions SHELL` and `--man`: shell completions and a man page,
//! generated from the same clap definitions that parse the command line.

use clap::CommandFactory;

/// Handles `--completions SHELL` / `--man` if present in `argv`; returns
/// true when it printed something and the program should exit.
pub fn handle<C: CommandFactory>(argv: &[std::ffi::OsString]) -> bool {
    let pos = |flag: &str| argv.iter().position(|a| a == flag);
    let mut cmd = C::command();
    let name = cmd.get_name().to_string();
    if let Some(i) = pos("--completions") {
        let shell = argv
            .get(i + 1)
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<clap_complete::Shell>().ok());
        match shell {
            Some(sh) => clap_complete::generate(sh, &mut cmd, name, &mut std::io::stdout()),
            None => {
                eprintln!(
                    "{name}: --completions needs a shell: bash, zsh, fish, elvish or powershell"
                );
                std::process::exit(super::exit::USAGE);
            }
        }
        return true;
    }
    if pos("--man").is_some() {
        if let Err(e) = clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
            eprintln!("{name}: cannot write the man page: {e}");
            std::process::exit(super::exit::TEMPORARY);
        }
        return true;
    }
    false
}
