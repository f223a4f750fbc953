//! The progress bar: whole job and current file, with rate and ETA. Drawn on
//! stderr only when it is a terminal (or when forced), never on stdout.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::transfer::{Progress, ProgressFn};

/// Whether to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only when stderr is a terminal (the default).
    Auto,
    /// Never (`-q`).
    Off,
    /// Always (`--progress`), e.g. to watch a transfer in a log.
    On,
}

/// A progress bar fed by the transfer layer's progress reports.
pub struct Bar {
    bar: ProgressBar,
    file: Arc<Mutex<String>>,
}

impl Bar {
    /// A bar for `mode`, or `None` when nothing should be drawn.
    pub fn new(mode: Mode) -> Option<Bar> {
        let draw = match mode {
            Mode::Off => return None,
            Mode::On => true,
            Mode::Auto => std::io::stderr().is_terminal(),
        };
        if !draw {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:30!} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>4} [{bar:30}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Some(Bar {
            bar,
            file: Arc::new(Mutex::new(String::new())),
        })
    }

    /// The callback to hand to the transfer layer.
    pub fn callback(&self) -> ProgressFn {
        let bar = self.bar.clone();
        let file = self.file.clone();
        Arc::new(move |p: &Progress| match p {
            Progress::Started { total_bytes, .. } => bar.set_length(*total_bytes),
            Progress::FileStarted { path, .. } => {
                if let Ok(mut f) = file.lock() {
                    f.clone_from(path);
                }
                bar.set_message(path.clone());
            }
            Progress::Bytes { job_done, .. } => bar.set_position(*job_done),
            Progress::FileFinished { .. } => {}
        })
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The progress mode the common options ask for.
pub fn mode(c: &super::args::Common) -> Mode {
    if c.quiet || c.json {
        Mode::Off
    } else if c.progress {
        Mode::On
    } else {
        Mode::Auto
    }
}
