//! transfer (work in progress).
