//! Peer text made safe for a log line or a terminal: a CLOSE reason, a
//! path or a user name from the network may hold newlines (a forged log
//! line) or terminal escape sequences. Every log record's fields go
//! through [`escape`] (see `init_logging`), as do messages shown from the
//! far side.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL, C1: newline, carriage
/// return, escape, ...) written as a Rust escape (`\n`, `\r`, `\u{1b}`), so
/// that it stays on one line and cannot drive a terminal.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain text é"), "plain text é");
        assert_eq!(
            escape("x\nvfer-recv: user \"root\" logged in\r\u{1b}[2J\u{9b}"),
            "x\\nvfer-recv: user \"root\" logged in\\r\\u{1b}[2J\\u{9b}"
        );
        assert!(!escape("a\u{7f}\tb").contains(['\u{7f}', '\t']));
    }
}
