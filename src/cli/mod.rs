//! Pieces shared by the `vfer-send` and `vfer-recv` command lines:
//! operand parsing and exit codes.

pub mod exit;
pub mod target;
