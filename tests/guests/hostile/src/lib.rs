//! Test guest `weir-guest-hostile`: keeps every row, unless the batch carries a marked row.
//!
//! Reads the optional `utf8` column `hostile`. When a row of the batch holds one of these marks,
//! the call fails the way the first such mark says; otherwise (null, other text, or no column)
//! every row is kept:
//!
//! | mark | what the call does | what the host should report |
//! |---|---|---|
//! | `error` | returns `Err("hostile error")` | `guest_error` |
//! | `trap` | panics ("hostile trap"): the SDK reports the message, then the module traps | `guest_error` |
//! | `loop` | never returns | `time_limit` |
//! | `alloc` | allocates (and touches) memory without bound | `memory_limit` |
//!
//! `cargo xtask soak` marks a small fraction of its rows, so the policy fails on some batches
//! and not on others while the host keeps running. It takes no parameters.

use weir_sdk::prelude::*;

/// What a marked row asks the guest to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Return an error.
    Error,
    /// Panic (the module traps).
    Trap,
    /// Loop forever.
    Loop,
    /// Allocate without bound.
    Alloc,
}

impl Mark {
    /// The mark a cell holds, if any.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "error" => Some(Self::Error),
            "trap" => Some(Self::Trap),
            "loop" => Some(Self::Loop),
            "alloc" => Some(Self::Alloc),
            _ => None,
        }
    }
}

/// The first mark in `batch`'s `hostile` column.
///
/// # Errors
/// When the column has another type.
pub fn first_mark(batch: &Batch) -> Result<Option<Mark>> {
    let Some(col) = batch.opt_utf8("hostile")? else {
        return Ok(None);
    };
    Ok(col.iter().flatten().find_map(Mark::parse))
}

/// The filter.
///
/// # Errors
/// For a batch marked `error`, deliberately.
///
/// # Panics
/// For a batch marked `trap`, deliberately.
#[weir_sdk::filter(reads = ["hostile: utf8?"])]
pub fn weir_guest_hostile(batch: &Batch) -> Result<Selection> {
    let n = batch.num_rows();
    match first_mark(batch)? {
        None => Ok(Selection::all(n)),
        Some(Mark::Error) => Err(Error::new("hostile error")),
        Some(Mark::Trap) => panic!("hostile trap"),
        Some(Mark::Loop) => weir_guest_misbehave::spin_forever(),
        Some(Mark::Alloc) => weir_guest_misbehave::exhaust_memory(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cells: &[Option<&str>]) -> Batch {
        let mut b = StringBuilder::new();
        for c in cells {
            b.append_option(*c);
        }
        Batch::from_columns(vec![("hostile", Column::from(b))])
    }

    #[test]
    fn unmarked_batches_keep_every_row() {
        let sel = weir_guest_hostile(&batch(&[None, Some("fine"), None])).unwrap();
        assert_eq!(sel.count(), 3);
        let empty = Batch::from_columns::<&str>(vec![]);
        assert_eq!(weir_guest_hostile(&empty).unwrap().count(), 0);
    }

    #[test]
    fn the_first_mark_decides() {
        assert_eq!(
            first_mark(&batch(&[None, Some("alloc"), Some("error")])).unwrap(),
            Some(Mark::Alloc)
        );
        let e = weir_guest_hostile(&batch(&[Some("x"), Some("error")])).unwrap_err();
        assert_eq!(e.message(), "hostile error");
        assert!(std::panic::catch_unwind(|| weir_guest_hostile(&batch(&[Some("trap")]))).is_err());
    }
}
