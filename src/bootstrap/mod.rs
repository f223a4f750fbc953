//! bootstrap (work in progress).
