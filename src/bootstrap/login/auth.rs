//! The login exchange inside the session (docs/PROTOCOL.md §7.7): the
//! client's LOGIN message (binding value, user name, password) and the
//! server's VERDICT. Sizes are checked before anything is read into memory.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::codec::{Put, Reader};

/// Magic of the LOGIN message.
pub const LOGIN_MAGIC: &[u8; 4] = b"VFLG";
/// Magic of the VERDICT message.
pub const VERDICT_MAGIC: &[u8; 4] = b"VFLV";
/// Longest user name.
pub const MAX_USER_LEN: usize = 64;
/// Longest password.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A login request as the server received it.
pub struct LoginMessage {
    /// The binding value the client derived from the pre-handshake.
    pub binding: [u8; 32],
    /// The user name (any bytes up to 64; invalid names are unknown users).
    pub user: String,
    /// The password, wiped on drop.
    pub password: Zeroizing<Vec<u8>>,
}

/// The server's answer to a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in: the daemon request (§5) follows.
    Ok,
    /// Wrong user name or password (the two are never told apart).
    Refused,
    /// Too many failed logins for this user or address; retry after so many seconds.
    RateLimited(u32),
}

/// A malformed or truncated login exchange.
#[derive(Debug, thiserror::Error)]
pub enum AuthWireError {
    /// Not a login message.
    #[error("malformed login message: {0}")]
    Malformed(&'static str),
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes `"VFLG" | u8 1 | binding[32] | u8 user_len | user | u16 pw_len | password`.
pub async fn write_login<W: AsyncWrite + Unpin>(
    w: &mut W,
    binding: &[u8; 32],
    user: &str,
    password: &[u8],
) -> Result<(), AuthWireError> {
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(AuthWireError::Malformed("user name must be 1 to 64 bytes"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthWireError::Malformed("password longer than 1024 bytes"));
    }
    let mut b = Zeroizing::new(Vec::with_capacity(48 + user.len() + password.len()));
    b.put_bytes(LOGIN_MAGIC);
    b.put_u8(1);
    b.put_bytes(binding);
    b.put_u8(user.len() as u8);
    b.put_bytes(user.as_bytes());
    b.put_u16(password.len() as u16);
    b.put_bytes(password);
    w.write_all(&b).await?;
    w.flush().await?;
    Ok(())
}

/// Reads a LOGIN message.
pub async fn read_login<R: AsyncRead + Unpin>(r: &mut R) -> Result<LoginMessage, AuthWireError> {
    let mut head = [0u8; 4 + 1 + 32 + 1];
    r.read_exact(&mut head).await?;
    let mut h = Reader::new(&head);
    let short = |_| AuthWireError::Malformed("truncated");
    let (magic, version) = (h.array::<4>().map_err(short)?, h.u8().map_err(short)?);
    if &magic != LOGIN_MAGIC || version != 1 {
        return Err(AuthWireError::Malformed("bad magic or version"));
    }
    let binding = h.array::<32>().map_err(short)?;
    let ulen = usize::from(h.u8().map_err(short)?);
    if ulen == 0 || ulen > MAX_USER_LEN {
        return Err(AuthWireError::Malformed("bad user name length"));
    }
    let mut user = vec![0u8; ulen];
    r.read_exact(&mut user).await?;
    let mut l = [0u8; 2];
    r.read_exact(&mut l).await?;
    let plen = u16::from_be_bytes(l) as usize;
    if plen > MAX_PASSWORD_LEN {
        return Err(AuthWireError::Malformed("password too long"));
    }
    let mut password = Zeroizing::new(vec![0u8; plen]);
    r.read_exact(&mut password).await?;
    Ok(LoginMessage {
        binding,
        // A name that is not UTF-8 can match no user: keep it as an unknown one.
        user: String::from_utf8_lossy(&user).into_owned(),
        password,
    })
}

/// Writes `"VFLV" | u8 code | u32 retry_after_secs` (code 0 ok, 1 refused, 2 rate-limited).
pub async fn write_verdict<W: AsyncWrite + Unpin>(w: &mut W, v: Verdict) -> std::io::Result<()> {
    let (code, after) = match v {
        Verdict::Ok => (0u8, 0u32),
        Verdict::Refused => (1, 0),
        Verdict::RateLimited(s) => (2, s),
    };
    let mut b = Vec::with_capacity(9);
    b.put_bytes(VERDICT_MAGIC);
    b.put_u8(code);
    b.put_u32(after);
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads a VERDICT message.
pub async fn read_verdict<R: AsyncRead + Unpin>(r: &mut R) -> Result<Verdict, AuthWireError> {
    let mut b = [0u8; 9];
    r.read_exact(&mut b).await?;
    let mut v = Reader::new(&b);
    let short = |_| AuthWireError::Malformed("truncated");
    let (magic, code, after) = (
        v.array::<4>().map_err(short)?,
        v.u8().map_err(short)?,
        v.u32().map_err(short)?,
    );
    if &magic != VERDICT_MAGIC {
        return Err(AuthWireError::Malformed("bad verdict magic"));
    }
    match code {
        0 => Ok(Verdict::Ok),
        1 => Ok(Verdict::Refused),
        2 => Ok(Verdict::RateLimited(after)),
        _ => Err(AuthWireError::Malformed("unknown verdict")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn round_trip() {
        let mut b = Vec::new();
        write_login(&mut b, &[3; 32], "alice", b"pw").await.unwrap();
        let m = read_login(&mut &b[..]).await.unwrap();
        assert_eq!(
            (m.binding, m.user.as_str(), &m.password[..]),
            ([3; 32], "alice", &b"pw"[..])
        );
        assert!(read_login(&mut &b[..b.len() - 1]).await.is_err());
        for v in [Verdict::Ok, Verdict::Refused, Verdict::RateLimited(42)] {
            let mut b = Vec::new();
            write_verdict(&mut b, v).await.unwrap();
            assert_eq!(read_verdict(&mut &b[..]).await.unwrap(), v);
        }
        let mut b = Vec::new();
        assert!(write_login(&mut b, &[0; 32], "", b"").await.is_err());
        assert!(write_login(&mut b, &[0; 32], "u", &[0; 1025])
            .await
            .is_err());
    }

    proptest! {
        #[test]
        fn readers_never_panic(d in proptest::collection::vec(any::<u8>(), 0..200)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let _ = read_login(&mut &d[..]).await;
                let _ = read_verdict(&mut &d[..]).await;
            });
        }
    }
}
