//! Signed policy bundles: the format, keys, the trust store, verification and rollback protection. See docs/bundle.md.
