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
    file: Arc<Mutex<Current>>,
    /// `--progress` without a terminal: a plain line every second instead
    /// of a redrawn bar (for logs).
    lines: bool,
}

/// The file being moved, for the bar's message.
#[derive(Default)]
struct Current {
    path: String,
    size: Option<u64>,
    /// Last percentage shown (the message is rebuilt only when it moves).
    shown: Option<u64>,
    /// When the last plain line was printed.
    printed: Option<std::time::Instant>,
}

/// The bar's message for the current file: name, bytes done and percent.
fn file_label(path: &str, done: u64, size: Option<u64>) -> String {
    let done_h = indicatif::BinaryBytes(done);
    match size {
        Some(n) if n > 0 => format!("{path} {done_h} ({}%)", done.min(n) * 100 / n),
        _ => format!("{path} {done_h}"),
    }
}

impl Bar {
    /// A bar for `mode`, or `None` when nothing should be drawn.
    pub fn new(mode: Mode) -> Option<Bar> {
        let terminal = std::io::stderr().is_terminal();
        match mode {
            Mode::Off => return None,
            Mode::Auto if !terminal => return None,
            _ => {}
        }
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template(
            "{msg:40!} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>4} [{bar:30}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        if terminal {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Some(Bar {
            bar,
            file: Arc::new(Mutex::new(Current::default())),
            lines: !terminal,
        })
    }

    /// The callback to hand to the transfer layer.
    pub fn callback(&self) -> ProgressFn {
        let bar = self.bar.clone();
        let file = self.file.clone();
        let lines = self.lines;
        Arc::new(move |p: &Progress| match p {
            Progress::Started { total_bytes, .. } => bar.set_length(*total_bytes),
            Progress::FileStarted { path, size, offset } => {
                if let Ok(mut f) = file.lock() {
                    f.path.clone_from(path);
                    f.size = *size;
                    f.shown = None;
                }
                bar.set_message(file_label(path, *offset, *size));
            }
            Progress::Bytes {
                file_done,
                job_done,
            } => {
                if let Ok(mut f) = file.lock() {
                    let pct = f.size.map_or(*file_done >> 20, |n| {
                        file_done.saturating_mul(100) / n.max(1)
                    });
                    if f.shown != Some(pct) {
                        f.shown = Some(pct);
                        bar.set_message(file_label(&f.path, *file_done, f.size));
                    }
                    bar.set_position(*job_done);
                    let now = std::time::Instant::now();
                    if lines && f.printed.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                        f.printed = Some(now);
                        eprintln!(
                            "{}  {}/{}  {}/s  ETA {}s",
                            bar.message(),
                            indicatif::BinaryBytes(*job_done),
                            indicatif::BinaryBytes(bar.length().unwrap_or(0)),
                            indicatif::BinaryBytes(bar.per_sec() as u64),
                            bar.eta().as_secs()
                        );
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::file_label;

    #[test]
    fn labels_show_the_current_file() {
        assert_eq!(file_label("a.iso", 0, Some(0)), "a.iso 0 B");
        assert_eq!(file_label("a.iso", 512, Some(1024)), "a.iso 512 B (50%)");
        assert_eq!(
            file_label("big", 3 << 30, Some(4 << 30)),
            "big 3.00 GiB (75%)"
        );
        assert_eq!(file_label("-", 2048, None), "- 2.00 KiB");
    }
}
