//! A progress bar on stderr for long runs: redrawn in place on a terminal, one line per update
//! otherwise (CI logs), with the elapsed time and an estimate of what is left.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Is a bar drawn on the terminal right now (so that other output clears it first)?
static DRAWN: AtomicBool = AtomicBool::new(false);

/// Clears a bar drawn on the terminal, so that a message can take the line.
pub fn clear() {
    if DRAWN.swap(false, Ordering::Relaxed) {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

/// Progress over `total` units of work.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    tty: bool,
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total: total.max(1),
            done: 0,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// The bar's text for `label` after `done` units of `total`, `elapsed` into the run.
    fn line(&self, label: &str) -> String {
        const WIDTH: usize = 24;
        let filled = WIDTH * self.done.min(self.total) / self.total;
        let elapsed = self.start.elapsed();
        let eta = if self.done == 0 {
            "?".to_owned()
        } else {
            let per = elapsed.as_secs_f64() / self.done as f64;
            clock(Duration::from_secs_f64(
                per * self.total.saturating_sub(self.done) as f64,
            ))
        };
        format!(
            "[{}{}] {:>3}% {label}  elapsed {} left ~{eta}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            100 * self.done.min(self.total) / self.total,
            clock(elapsed)
        )
    }

    /// Shows that work on `label` is under way (the units before it are done).
    pub fn show(&self, label: &str) {
        let line = self.line(label);
        if self.tty {
            eprint!("\r\x1b[K{line}");
            let _ = std::io::stderr().flush();
            DRAWN.store(true, Ordering::Relaxed);
        } else {
            eprintln!("{line}");
        }
    }

    /// Marks one unit done.
    pub fn advance(&mut self) {
        self.done += 1;
    }

    /// Ends the bar (a final newline on a terminal).
    pub fn finish(&mut self) {
        self.done = self.total;
        if self.tty && DRAWN.swap(false, Ordering::Relaxed) {
            eprintln!("\r\x1b[K{}", self.line("done"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_work_done() {
        let mut p = Progress::new(4);
        assert!(p.line("x").starts_with("[------------------------]   0% x"));
        p.advance();
        assert!(p.line("x").starts_with("[######------------------]  25% x"));
        p.advance();
        p.advance();
        p.advance();
        p.advance();
        assert!(p.line("x").contains("100%"));
        assert_eq!(clock(Duration::from_secs(125)), "2:05");
    }
}
