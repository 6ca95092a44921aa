//! The progress bar of `notch sync` and `restore`: blocks done of the
//! pass's total and an ETA, drawn on stderr only when stdout and stderr are
//! terminals and `--json` is off (so scripts and pipes see nothing extra).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use notch_core::{Wallet, WalletEvent};

/// A bar following a wallet's sync events until [`Bar::finish`].
pub struct Bar {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Starts drawing if `enabled` and both stdout and stderr are terminals.
    pub fn start(wallet: &Wallet, enabled: bool) -> Bar {
        if !enabled || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
            return Bar { task: None };
        }
        let mut events = wallet.subscribe();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut first: Option<(Instant, u64)> = None;
            let mut last_draw: Option<Instant> = None;
            loop {
                match events.recv().await {
                    Ok(WalletEvent::SyncProgress {
                        done,
                        total,
                        height,
                        target,
                    }) => {
                        let now = Instant::now();
                        let base = *first.get_or_insert((now, done));
                        let finished = done >= total;
                        if !finished
                            && last_draw.is_some_and(|t| now - t < Duration::from_millis(100))
                        {
                            continue;
                        }
                        last_draw = Some(now);
                        draw(line(done, total, height, target, base, now, started));
                    }
                    Ok(WalletEvent::SyncDone { .. }) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        });
        Bar { task: Some(task) }
    }

    /// Stops drawing and clears the bar's line.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

fn draw(text: String) {
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
}

/// `[#####.....]  1,200/5,000 blocks  24%  block 1,200 of 5,000  ETA 0:12`.
fn line(
    done: u64,
    total: u64,
    height: u64,
    target: u64,
    (since, done_then): (Instant, u64),
    now: Instant,
    started: Instant,
) -> String {
    const WIDTH: u64 = 30;
    let total = total.max(1);
    let done = done.min(total);
    let filled = (done * WIDTH / total) as usize;
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    );
    let elapsed = now - since;
    let rate = (done - done_then.min(done)) as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta = if done >= total {
        format!("done in {}", clock((now - started).as_secs()))
    } else if rate > 0.0 {
        format!(
            "ETA {}",
            clock(((total - done) as f64 / rate).ceil() as u64)
        )
    } else {
        "ETA --:--".to_owned()
    };
    format!(
        "[{bar}] {done}/{total} blocks {pct:>3}%  block {height} of {target}  {eta}",
        pct = done * 100 / total
    )
}

fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_blocks_and_eta() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(10);
        let text = line(100, 500, 100, 500, (t0, 0), now, t0);
        assert!(text.contains("100/500 blocks"), "{text}");
        assert!(text.contains(" 20%"), "{text}");
        assert!(text.contains("ETA 0:40"), "{text}");
        let text = line(500, 500, 500, 500, (t0, 0), now, t0);
        assert!(text.contains("done in 0:10"), "{text}");
        assert_eq!(clock(3725), "1:02:05");
    }
}
