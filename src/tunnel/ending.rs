//! Ending a session so that both sides know how it went: the stream is
//! finished (the peer has every byte) before the CLOSE, and a failed peer's
//! reason can be read back for the user.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::transport::{CloseReason, Session, Stats};

/// Ends a session after its work: waits until the peer has every byte we
/// sent, then closes with `code` (0 = success).
pub async fn close(session: Session, code: u64) -> Stats {
    close_with(session, code, if code == 0 { "done" } else { "failed" }).await
}

/// Like [`close`], telling the peer `reason` (shown to its user).
pub async fn close_with(session: Session, code: u64, reason: &str) -> Stats {
    let mut stream = session.stream();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.shutdown()).await;
    session.close(code, reason).await
}

/// The peer's reason for ending the session in error, if it gave one
/// (waits briefly: its CLOSE may trail the end of its stream).
pub async fn peer_reason(session: &Session) -> Option<String> {
    for _ in 0..25 {
        match session.close_reason() {
            Some(CloseReason::Peer { code, reason }) if code != 0 && !reason.is_empty() => {
                return Some(reason)
            }
            Some(_) => return None,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    None
}

/// An error and its causes on one line, `outer: inner: innermost`, leaving
/// out a cause whose text an outer message already quotes (many errors
/// embed their source in their own message).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io).context("key file k: No such file");
        assert_eq!(describe(&e), "key file k: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(describe(&e), "outer: inner");
    }
}
