//! The output of a transform.

use crate::batch::Batch;
use crate::builder::Column;
use crate::selection::Selection;

/// What a transform returns: its `writes` columns, by name, and optionally a selection.
///
/// ```
/// use weir_sdk::prelude::*;
/// let mut c = Float64Builder::with_capacity(2);
/// c.append_value(1.0);
/// c.append_null();
/// let out = Output::new().with("celsius", c);
/// assert_eq!(out.column("celsius").unwrap().null_count(), 1);
/// ```
///
/// The SDK checks the columns against the `writes` declaration when the function returns (every
/// declared name present once, nothing else, the declared type, no nulls in a non-optional
/// column, every column as long as the input, unless `passthrough = "none"`) and turns a mismatch
/// into a `GUEST_ERROR` naming it. The order of `with` calls does not matter.
///
/// An optional output (declared with `?`) may be left out of a batch: the host then omits that
/// column from the output (with `passthrough = "all"`, an input column of the same name stays as
/// it was). Use it when there is nothing to write, e.g. the input column was absent.
#[derive(Debug, Default)]
pub struct Output {
    pub(crate) columns: Vec<(String, Column)>,
    pub(crate) selection: Option<Selection>,
}

impl Output {
    /// An output with no columns yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the column `name` (a builder or a finished [`Column`]).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, column: impl Into<Column>) -> Self {
        self.push(name, column);
        self
    }

    /// Adds the column `name`.
    pub fn push(&mut self, name: impl Into<String>, column: impl Into<Column>) {
        self.columns.push((name.into(), column.into()));
    }

    /// Also drops the rows `selection` does not keep (applied by the host after it assembles the
    /// output; only for transforms whose passthrough is not `none`).
    #[must_use]
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = Some(selection);
        self
    }

    /// The column `name`, if added.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The selection, if set.
    #[must_use]
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    /// The output as a [`Batch`], to read it back through views in native tests.
    ///
    /// # Panics
    /// When the columns have different lengths.
    #[must_use]
    pub fn into_batch(self) -> Batch {
        Batch::from_columns(self.columns)
    }

    /// The columns in the order they were added.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &Column)> {
        self.columns.iter().map(|(n, c)| (n.as_str(), c))
    }
}
