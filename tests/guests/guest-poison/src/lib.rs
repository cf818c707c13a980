//! Test guest `guest-poison`: a filter that keeps every row, unless the batch holds a *poison*
//! row, one whose `src_port` is in `poison`. Then the whole call fails the way `mode` says:
//! `"error"` returns an error, `"panic"` panics, `"loop"` never returns and `"alloc"` allocates
//! without bound. It is what poison-batch isolation is for: a few bad rows that make the
//! policy fail on every batch they are in.
//!
//! `leak_kib` leaks that much memory on every call, to test instance recycling;
//! `spin_per_row` busy-loops that many iterations per row, a slow policy for backpressure tests.
//!
//! ```json
//! {"poison": [7, 4242], "mode": "panic", "leak_kib": 0, "spin_per_row": 0}
//! ```

use serde::Deserialize;
use weir_sdk::prelude::*;

/// How a batch with a poison row fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Return an error.
    #[default]
    Error,
    /// Panic (a trap).
    Panic,
    /// Loop forever (the time limit).
    Loop,
    /// Allocate without bound (the memory limit).
    Alloc,
}

/// The parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The `src_port` values that make a batch fail.
    pub poison: Vec<u16>,
    /// How it fails.
    #[serde(default)]
    pub mode: Mode,
    /// KiB leaked on every call, poison or not (a guest that grows until it is recycled or
    /// hits its memory limit).
    #[serde(default)]
    pub leak_kib: u32,
    /// Busy-loop iterations per row on every call: a deliberately slow policy, to make
    /// queues fill up behind it.
    #[serde(default)]
    pub spin_per_row: u32,
}

/// Init: takes the parameters as they are.
///
/// # Errors
/// Never.
pub fn init(p: Params) -> Result<Params> {
    Ok(p)
}

/// The filter.
///
/// # Errors
/// For a batch with a poison row in mode `error`, deliberately.
///
/// # Panics
/// For a batch with a poison row in mode `panic`, deliberately.
#[weir_sdk::filter(reads = ["src_port: uint16"], init = init)]
pub fn guest_poison(batch: &Batch, p: &Params) -> Result<Selection> {
    let n = batch.num_rows();
    if p.leak_kib > 0 {
        // Touched, so the pages are really used.
        std::hint::black_box(vec![1u8; p.leak_kib as usize * 1024]).leak();
    }
    let mut spin = 0_u64;
    for _ in 0..u64::from(p.spin_per_row) * n as u64 {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
    let ports = batch.u16("src_port")?;
    let poisoned = (0..n).find(|&i| ports.get(i).is_some_and(|v| p.poison.contains(&v)));
    let Some(row) = poisoned else {
        return Ok(Selection::all(n));
    };
    match p.mode {
        Mode::Error => Err(Error::new(format!("poison row {row} of {n}"))),
        Mode::Panic => panic!("poison row {row} of {n}"),
        Mode::Loop => weir_guest_misbehave::spin_forever(),
        Mode::Alloc => weir_guest_misbehave::exhaust_memory(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ports: &[Option<u16>]) -> Batch {
        let col: Column = ports.iter().copied().collect::<UInt16Builder>().into();
        Batch::from_columns(vec![("src_port", col)])
    }

    #[test]
    fn fails_only_with_a_poison_row() {
        let p = Params {
            poison: vec![7],
            mode: Mode::Error,
            leak_kib: 0,
            spin_per_row: 0,
        };
        let clean = guest_poison(&batch(&[Some(1), None, Some(8)]), &p).unwrap();
        assert_eq!(clean.len(), 3);
        let err = guest_poison(&batch(&[Some(1), Some(7), Some(8)]), &p).unwrap_err();
        assert_eq!(err.message(), "poison row 1 of 3");
    }
}
