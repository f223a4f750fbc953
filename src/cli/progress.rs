//! The progress bar: whole job and current file, with rate and ETA. Drawn on
//! stderr only when it is a terminal (or when forced), never on stdout.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
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

/// A progress bar fed by the transfer layer's progress reports. Its
/// position is what the far side has: bytes handed to the session minus
/// those it has not acknowledged yet ([`Bar::tick`]).
pub struct Bar {
    bar: ProgressBar,
    file: Arc<Mutex<Current>>,
    /// Job bytes handed to (or, receiving, taken from) the session.
    done: Arc<std::sync::atomic::AtomicU64>,
    /// Job bytes already in place when the transfer started (resume).
    skipped: Arc<std::sync::atomic::AtomicU64>,
    start: std::time::Instant,
    /// `--progress` without a terminal: a plain line every second instead
    /// of a redrawn bar (for logs).
    lines: bool,
}

/// The file being moved, for the bar's message.
#[derive(Default)]
struct Current {
    path: String,
    size: Option<u64>,
    /// Bytes of it handed to (or taken from) the session.
    file_done: u64,
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
            done: Arc::default(),
            skipped: Arc::default(),
            start: std::time::Instant::now(),
            lines: !terminal,
        })
    }

    /// The callback to hand to the transfer layer.
    pub fn callback(&self) -> ProgressFn {
        let bar = self.bar.clone();
        let file = self.file.clone();
        let done = self.done.clone();
        let skipped = self.skipped.clone();
        Arc::new(move |p: &Progress| match p {
            Progress::Started { total_bytes, .. } => bar.set_length(*total_bytes),
            Progress::FileStarted { path, size, offset } => {
                if let Ok(mut f) = file.lock() {
                    f.path.clone_from(path);
                    f.size = *size;
                    f.shown = None;
                }
                skipped.fetch_add(*offset, Ordering::Relaxed);
                bar.set_message(file_label(path, *offset, *size));
            }
            Progress::Bytes {
                file_done,
                job_done,
            } => {
                if let Ok(mut f) = file.lock() {
                    f.file_done = *file_done;
                }
                done.store(*job_done, Ordering::Relaxed);
            }
            Progress::FileFinished { .. } => {}
        })
    }

    /// Moves the bar to what the far side has: the bytes handed to the
    /// session minus `unconfirmed` (not yet acknowledged); without a
    /// terminal (`--progress` into a pipe or log), prints a line a second.
    /// Call a few times a second.
    pub fn tick(&self, unconfirmed: u64) {
        let done = self.done.load(Ordering::Relaxed);
        let pos = done.saturating_sub(unconfirmed).max(self.bar.position());
        self.bar.set_position(pos);
        let Ok(mut f) = self.file.lock() else { return };
        // The current file's share of what the far side has.
        let file_pos = f.file_done.saturating_sub(done.saturating_sub(pos));
        let pct = f
            .size
            .map_or(file_pos >> 20, |n| file_pos.saturating_mul(100) / n.max(1));
        if f.shown != Some(pct) {
            f.shown = Some(pct);
            self.bar.set_message(file_label(&f.path, file_pos, f.size));
        }
        if !self.lines {
            return;
        }
        let now = std::time::Instant::now();
        if f.printed.is_some_and(|t| now - t < Duration::from_secs(1)) {
            return;
        }
        f.printed = Some(now);
        drop(f);
        self.print_line(pos);
    }

    /// One plain progress line: file, percent of the job, bytes, rate and
    /// an ETA from the rate so far (bytes that had to cross the network).
    fn print_line(&self, pos: u64) {
        let total = self.bar.length().unwrap_or(0);
        let pct = (pos.min(total) * 100).checked_div(total).unwrap_or(100);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let moved = pos.saturating_sub(self.skipped.load(Ordering::Relaxed));
        let rate = moved as f64 / secs;
        let eta = if pos >= total {
            "0s".to_string()
        } else if rate > 0.0 {
            format!("{:.0}s", (total - pos) as f64 / rate)
        } else {
            "?".to_string()
        };
        eprintln!(
            "{}  {pct}%  {}/{}  {}/s  ETA {eta}",
            self.bar.message(),
            indicatif::BinaryBytes(pos),
            indicatif::BinaryBytes(total),
            indicatif::BinaryBytes(rate as u64),
        );
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// The copy is complete: without a terminal, the last line says 100 %.
    pub fn finish_ok(&self) {
        if self.lines {
            let total = self.bar.length().unwrap_or(0);
            let pos = total.max(self.done.load(Ordering::Relaxed));
            if let Ok(mut f) = self.file.lock() {
                let size = f.size;
                let path = std::mem::take(&mut f.path);
                self.bar
                    .set_message(file_label(&path, size.unwrap_or(0), size));
            }
            self.print_line(pos);
        }
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
