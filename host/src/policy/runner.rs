//! [`PolicyRunner`]: one policy in a chain — its module, parameters and live instance.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{FieldRef, Schema};
use arrow_select::filter::filter_record_batch;
use weir_abi::{Passthrough, PolicyKind};

use super::abi::{Assembled, InputPlan, OutputCheck};
use super::error::{Phase, PolicyError};
use super::instance::PolicyInstance;
use super::load::PolicyModule;

/// Runs one policy module over batches.
///
/// It keeps one warm instance and reuses it batch after batch. After any failure the instance is
/// dropped, and the next batch gets a fresh one (pooled instantiation takes microseconds).
pub struct PolicyRunner {
    module: Arc<PolicyModule>,
    params: Vec<u8>,
    instance: Option<PolicyInstance>,
}

impl std::fmt::Debug for PolicyRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRunner")
            .field("policy", &self.module.name())
            .field("warm", &self.instance.is_some())
            .finish_non_exhaustive()
    }
}

impl PolicyRunner {
    /// A runner for `module` with `params` (the policy's parameters as JSON; empty means `{}`).
    ///
    /// The first instance is created right away, so a policy that cannot start (bad parameters,
    /// a trap in its start function) is reported here rather than on the first batch.
    ///
    /// # Errors
    /// When the first instance cannot be created and initialized.
    pub fn new(module: Arc<PolicyModule>, params: Vec<u8>) -> Result<Self, PolicyError> {
        let params = if params.is_empty() {
            b"{}".to_vec()
        } else {
            params
        };
        let instance = PolicyInstance::new(&module, &params)?;
        Ok(Self {
            module,
            params,
            instance: Some(instance),
        })
    }

    /// A runner for another module (a new version of the same policy) with this runner's
    /// parameters. Its first instance is created and initialized right away.
    ///
    /// # Errors
    /// When the first instance cannot be created and initialized.
    pub fn with_module(&self, module: Arc<PolicyModule>) -> Result<Self, PolicyError> {
        Self::new(module, self.params.clone())
    }

    /// The parameters (JSON) handed to the policy's init.
    #[must_use]
    pub fn params(&self) -> &[u8] {
        &self.params
    }

    /// The module this runner runs.
    #[must_use]
    pub fn module(&self) -> &Arc<PolicyModule> {
        &self.module
    }

    /// The policy's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.module.name()
    }

    /// Whether a warm instance is ready.
    #[must_use]
    pub fn is_warm(&self) -> bool {
        self.instance.is_some()
    }

    /// The warm instance's linear memory, in bytes (`None` when no instance is warm).
    #[must_use]
    pub fn memory_bytes(&self) -> Option<usize> {
        self.instance.as_ref().map(PolicyInstance::memory_bytes)
    }

    /// Replaces the warm instance with a fresh one (instantiated and initialized now), so
    /// that whatever the old one accumulated, leaks included, is freed. State the policy kept
    /// inside the instance starts over.
    ///
    /// # Errors
    /// When the fresh instance cannot start; no instance is warm then, and the next batch
    /// tries again.
    pub fn recycle(&mut self) -> Result<(), PolicyError> {
        self.instance = None;
        self.instance = Some(PolicyInstance::new(&self.module, &self.params)?);
        Ok(())
    }

    /// Runs `batch` through the policy and returns its output.
    ///
    /// # Errors
    /// Any [`PolicyError`]. The batch is untouched; the caller decides its fate (fail mode).
    pub fn process(&mut self, batch: &RecordBatch) -> Result<RecordBatch, PolicyError> {
        let plan =
            InputPlan::new(&self.module.declared().inputs, batch).map_err(PolicyError::Input)?;
        if batch.num_rows() == 0 {
            return self.assemble(batch, None);
        }
        let mut instance = match self.instance.take() {
            Some(instance) => instance,
            None => PolicyInstance::new(&self.module, &self.params)?,
        };
        let assembled = instance.run_batch(&self.module, &plan)?;
        // Only a clean run keeps the instance warm.
        self.instance = Some(instance);
        self.assemble(batch, Some(assembled))
    }

    fn assemble(
        &self,
        batch: &RecordBatch,
        assembled: Option<Assembled>,
    ) -> Result<RecordBatch, PolicyError> {
        let manifest = self.module.manifest();
        let Some(assembled) = assembled else {
            // An empty batch: the output has the right schema and no rows.
            let empty = self.output_batch(batch, None, 0)?;
            return Ok(empty.slice(0, 0));
        };
        let output = match manifest.kind {
            PolicyKind::Filter => batch.clone(),
            PolicyKind::Transform => {
                self.output_batch(batch, Some(assembled.columns), assembled.num_rows)?
            }
        };
        match assembled.selection {
            Some(_) if assembled.selected == output.num_rows() => Ok(output),
            Some(_) if assembled.selected == 0 => Ok(output.slice(0, 0)),
            Some(selection) => filter_record_batch(&output, &BooleanArray::new(selection, None))
                .map_err(|e| {
                    PolicyError::bad_output(
                        Phase::Batch,
                        OutputCheck::ArrowValidation,
                        e.to_string(),
                    )
                }),
            None => Ok(output),
        }
    }

    /// The transform's output: passthrough columns from `batch` and the written columns.
    fn output_batch(
        &self,
        batch: &RecordBatch,
        written: Option<Vec<Option<ArrayRef>>>,
        rows: usize,
    ) -> Result<RecordBatch, PolicyError> {
        let manifest = self.module.manifest();
        if manifest.kind == PolicyKind::Filter {
            return Ok(batch.clone());
        }
        let outputs = &self.module.declared().outputs;
        let mut written: Vec<Option<ArrayRef>> = written.unwrap_or_else(|| {
            outputs
                .iter()
                .map(|d| Some(arrow_array::new_empty_array(&d.data_type)))
                .collect()
        });
        let by_name: HashMap<&str, usize> = outputs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let mut fields: Vec<FieldRef> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        if manifest.passthrough != Passthrough::None {
            let read: Vec<&str> = manifest.reads.iter().map(|c| c.name.as_str()).collect();
            // An input column is kept unless the guest wrote a column of that name (which
            // replaces it in place), or it was read and passthrough is `unread`. A written
            // column the guest left out of this batch does not replace anything.
            let keep_input =
                |name: &str| manifest.passthrough == Passthrough::All || !read.contains(&name);
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let name = field.name().as_str();
                match by_name
                    .get(name)
                    .and_then(|&i| Some((i, written[i].take()?)))
                {
                    Some((i, col)) => {
                        fields.push(Arc::new(outputs[i].field()));
                        columns.push(col);
                    }
                    None if keep_input(name) => {
                        fields.push(Arc::clone(field));
                        columns.push(Arc::clone(column));
                    }
                    None => {}
                }
            }
        }
        for (decl, col) in outputs.iter().zip(written) {
            if let Some(col) = col {
                fields.push(Arc::new(decl.field()));
                columns.push(col);
            }
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            batch.schema().metadata().clone(),
        ));
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(schema, columns, &options).map_err(|e| {
            PolicyError::bad_output(Phase::Batch, OutputCheck::RowCount, e.to_string())
        })
    }
}
