//! Carrying another program's bytes over a session, the parts that do not
//! depend on how the session was opened: timeouts that mean what they say
//! ([`idle`]), a byte pump between any two descriptors and a session
//! ([`splice`]), fixed-size records so lengths do not show ([`pad`],
//! `--pad`), stop signals ([`signals`]) and s6-ucspitlsd's delayed
//! security ([`ucspi`]), and ending a session so that both sides know how
//! it went ([`ending`]).
//!
//! The command-line modes (`--exec`, `--forward`, `--ucspi`) call into
//! here; nothing here parses a command line.

pub mod background;
pub mod ending;
pub mod idle;
pub mod keys;
pub mod local;
pub mod pad;
pub mod pidfile;
pub mod privdrop;
pub mod session_env;
pub mod signals;
pub mod splice;
pub mod ucspi;
