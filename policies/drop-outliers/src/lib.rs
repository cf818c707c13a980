//! drop-outliers
