//! The far side of a transfer, as ssh (or `--local`) starts it:
//! `vfer-recv --server [flags] -- DEST` or `vfer-send --server [flags] -- SRC...`.

use std::future::Future;

use super::args::Common;
use crate::bootstrap::ssh_server::ServerOptions;
use crate::bootstrap::Family;
use crate::service::files;
use crate::transport::Session;

/// Runs the SSH starting mode's server and then `on_session`; returns the
/// process exit status. Call before any runtime or thread starts.
pub fn run<F, Fut>(program: &str, common: Result<Common, String>, on_session: F) -> i32
where
    F: FnOnce(Session, Common) -> Fut,
    Fut: Future<Output = ()>,
{
    let opts = common.clone().and_then(|c| server_options(&c));
    let c = common.unwrap_or_default();
    crate::bootstrap::ssh_server::run(program, opts, move |session| on_session(session, c))
}

fn server_options(c: &Common) -> Result<ServerOptions, String> {
    let port_range = match &c.port_range {
        Some(p) => Some(p.parse()?),
        None => None,
    };
    let family = if c.ipv4 {
        Some(Family::V4)
    } else if c.ipv6 {
        Some(Family::V6)
    } else {
        None
    };
    let defaults = ServerOptions::default();
    Ok(ServerOptions {
        accept_timeout: c
            .accept_timeout
            .map_or(defaults.accept_timeout, std::time::Duration::from_secs),
        port_range,
        family,
        echo: c.echo,
        config: c.transport_config(),
    })
}

/// The pull direction's far side ([`files::serve_ssh_send`]), logging to
/// `VFER_SERVER_LOG` if set ([`super::farlog`]).
pub async fn serve_send(session: Session, c: Common, operands: Vec<String>) {
    let log = super::farlog::FarLog::start("vfer-send");
    let (summary, stats) = files::serve_ssh_send(session, c.recursive, c.preserve, &operands).await;
    if let Some(log) = log {
        log.finish(summary.as_ref(), &stats);
    }
}

/// The push direction's far side ([`files::serve_ssh_recv`]), logging as
/// [`serve_send`] does.
pub async fn serve_recv(session: Session, c: Common, operands: Vec<String>) {
    let log = super::farlog::FarLog::start("vfer-recv");
    let (summary, stats) = files::serve_ssh_recv(session, c.preserve, &operands).await;
    if let Some(log) = log {
        log.finish(summary.as_ref(), &stats);
    }
}
