//! Test guest `guest-fail`: a filter whose parameters pick a failure mode.
//!
//! `{"mode": "ok"}` keeps every row; `"error"` returns `Err("deliberate failure: <rows>")`;
//! `"panic"` panics with "deliberate panic"; `"panic_init"` panics in `weir_init`; `"loop"`
//! never returns; `"alloc"` allocates (and touches) memory without bound.

use serde::Deserialize;
use weir_sdk::prelude::*;

/// The failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Keep all rows.
    Ok,
    /// Return an error.
    Error,
    /// Panic in `weir_process`.
    Panic,
    /// Panic in `weir_init`.
    PanicInit,
    /// Loop forever.
    Loop,
    /// Allocate without bound.
    Alloc,
}

/// The parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The failure mode.
    pub mode: Mode,
}

/// Init: panics for `panic_init`.
///
/// # Errors
/// Never.
///
/// # Panics
/// For `panic_init`, deliberately.
pub fn init(p: Params) -> Result<Params> {
    assert!(p.mode != Mode::PanicInit, "deliberate panic in init");
    Ok(p)
}

/// The filter.
///
/// # Errors
/// For `error`, deliberately.
///
/// # Panics
/// For `panic`, deliberately.
#[weir_sdk::filter(reads = [], init = init)]
pub fn guest_fail(batch: &Batch, p: &Params) -> Result<Selection> {
    let n = batch.num_rows();
    match p.mode {
        Mode::Ok | Mode::PanicInit => Ok(Selection::all(n)),
        Mode::Error => Err(Error::new(format!("deliberate failure: {n}"))),
        Mode::Panic => panic!("deliberate panic"),
        Mode::Loop => weir_guest_misbehave::spin_forever(),
        Mode::Alloc => weir_guest_misbehave::exhaust_memory(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let batch = Batch::from_columns::<&str>(vec![]);
        let p = |m| Params { mode: m };
        assert_eq!(guest_fail(&batch, &p(Mode::Ok)).unwrap().len(), 0);
        assert_eq!(
            guest_fail(&batch, &p(Mode::Error)).unwrap_err().message(),
            "deliberate failure: 0"
        );
        assert!(std::panic::catch_unwind(|| init(p(Mode::PanicInit))).is_err());
    }
}
