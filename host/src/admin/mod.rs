//! The admin HTTP API and the watched policy directory.
