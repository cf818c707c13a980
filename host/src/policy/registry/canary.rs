//! The canary: a new version runs over the batches each of its chain positions saw last,
//! before it may replace the running version.

use std::sync::Arc;

use arrow_schema::Schema;

use super::policy_slot::PolicySlot;
use crate::policy::load::PolicyModule;
use crate::policy::runner::PolicyRunner;

/// What the canary found.
#[derive(Debug)]
pub struct CanaryPass {
    /// Batches run.
    pub batches: usize,
    /// Fresh runners, one per position (the canary's own instances saw the canary batches, so
    /// a stateful policy must not keep them).
    pub warm: Vec<(usize, PolicyRunner)>,
}

/// Why the canary failed.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The new version failed on a batch, or could not start with a position's parameters.
    #[error("{0}")]
    Failed(String),
    /// The new version's output has other columns or types than the running version's.
    #[error("{0}")]
    SchemaChanged(String),
}

/// Runs `module` at every position of `slot` over the position's recent batches.
///
/// # Errors
/// The first failure, naming the position, the batch and the cause.
pub fn run(slot: &PolicySlot, module: &Arc<PolicyModule>) -> Result<CanaryPass, CanaryError> {
    let mut batches = 0;
    let mut warm = Vec::with_capacity(slot.positions().len());
    for position in slot.positions() {
        let index = position.index;
        let start = |what: &str| {
            PolicyRunner::new(Arc::clone(module), position.params.clone()).map_err(|error| {
                CanaryError::Failed(format!(
                    "could not start {what} at chain position {index}: {error}"
                ))
            })
        };
        let mut runner = start("with the position's parameters")?;
        let (inputs, output_schema) = position.recent();
        for (n, batch) in inputs.iter().enumerate() {
            let output = runner.process(batch).map_err(|error| {
                CanaryError::Failed(format!(
                    "failed on recent batch {} of {} ({} rows) at chain position {index}: \
                     {} ({error})",
                    n + 1,
                    inputs.len(),
                    batch.num_rows(),
                    error.kind().as_str()
                ))
            })?;
            batches += 1;
            if let Some(expected) = &output_schema {
                same_columns(expected, &output.schema()).map_err(|d| {
                    CanaryError::SchemaChanged(format!(
                        "output at chain position {index} differs from the running version's: {d}"
                    ))
                })?;
            }
        }
        warm.push((index, start("a fresh instance")?));
    }
    Ok(CanaryPass { batches, warm })
}

/// Same column names and types, in order (nullability and metadata aside).
fn same_columns(expected: &Schema, got: &Schema) -> Result<(), String> {
    let show = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = expected.fields().len() == got.fields().len()
        && expected
            .fields()
            .iter()
            .zip(got.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        Ok(())
    } else {
        Err(format!("running [{}], new [{}]", show(expected), show(got)))
    }
}
