//! `weir eval`: run policies over a file of NDJSON records (or generated data) and show the
//! rows before and after, for policy authors trying their module.

use std::fs::File;
use std::io::{BufReader, Seek as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use arrow_array::RecordBatch;
use arrow_cast::pretty::pretty_format_batches;

use crate::engine::{Engine, Limits};
use crate::policy::bundle::{BundleCaps, verify_bundle};
use crate::policy::{FailMode, PolicyChain, PolicyModule, PolicyRunner};
use crate::sources::generate::{flow_batch, sensor_batch};

/// Generated data sets for `--generate`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Generated {
    /// Network-flow records (see `sources::generate::flow_batch`).
    Flows,
    /// Sensor readings from several models (see `sources::generate::sensor_batch`).
    Sensors,
}

/// Arguments of `weir eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A signed policy bundle (`.wpol`); repeat for a chain, applied in order.
    #[arg(long = "policy", required = true)]
    pub policies: Vec<PathBuf>,
    /// A public key (`.pub`) trusted to sign the policies, or a TOML file with a `[trust]`
    /// table; repeat for several.
    #[arg(long = "trust", required = true)]
    pub trust: Vec<PathBuf>,
    /// Parameters (JSON) for the policies, in the same order as `--policy`; missing ones are `{}`.
    #[arg(long = "params")]
    pub params: Vec<String>,
    /// NDJSON records, one JSON object per line; the schema is inferred from the file.
    #[arg(long, conflicts_with = "generate")]
    pub input: Option<PathBuf>,
    /// Use generated data instead of a file.
    #[arg(long, value_enum)]
    pub generate: Option<Generated>,
    /// Rows to generate.
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Rows to show before and after.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

fn read_ndjson(path: &std::path::Path) -> anyhow::Result<RecordBatch> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let mut reader = BufReader::new(open()?);
    let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(&mut reader, None)
        .with_context(|| format!("{}: cannot infer a schema", path.display()))?;
    reader.rewind()?;
    let schema = Arc::new(schema);
    let batches = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .build(reader)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: malformed record", path.display()))?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

pub(crate) fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let input = match (&args.input, args.generate) {
        (Some(path), _) => read_ndjson(path)?,
        (None, Some(Generated::Flows)) => flow_batch(args.rows, 1),
        (None, Some(Generated::Sensors)) => sensor_batch(args.rows, 1),
        (None, None) => bail!("give --input FILE.ndjson or --generate flows|sensors"),
    };
    if args.params.len() > args.policies.len() {
        bail!(
            "{} --params for {} --policy",
            args.params.len(),
            args.policies.len()
        );
    }
    let engine = Engine::new(Limits::default()).context("starting the WebAssembly engine")?;
    let trust = super::verify::load_trust(&args.trust)?;
    let caps = BundleCaps {
        max_module_bytes: engine.limits().max_module_bytes,
        ..BundleCaps::default()
    };
    let mut chain = PolicyChain::new();
    for (i, path) in args.policies.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let label = path.display().to_string();
        let verified = verify_bundle(&bytes, &label, &trust, &caps, std::time::SystemTime::now())?;
        let module = Arc::new(PolicyModule::compile(&engine, &label, verified.module())?);
        let params = args.params.get(i).cloned().unwrap_or_default().into_bytes();
        let runner = PolicyRunner::new(module, params)
            .with_context(|| format!("starting policy {}", path.display()))?;
        chain.push(runner, FailMode::DeadLetter);
    }
    println!("before: {} rows", input.num_rows());
    println!(
        "{}",
        pretty_format_batches(&[input.slice(0, args.show.min(input.num_rows()))])?
    );
    let started = Instant::now();
    let out = chain.run(input);
    let elapsed = started.elapsed();
    for dl in &out.dead_letters {
        println!(
            "dead-lettered {} rows at {}: {}",
            dl.rows.num_rows(),
            dl.policy,
            dl.error
        );
    }
    match &out.batch {
        Some(batch) => {
            println!(
                "after: {} rows ({:.2} ms)",
                batch.num_rows(),
                elapsed.as_secs_f64() * 1e3
            );
            println!(
                "{}",
                pretty_format_batches(&[batch.slice(0, args.show.min(batch.num_rows()))])?
            );
        }
        None => println!("after: no rows ({:.2} ms)", elapsed.as_secs_f64() * 1e3),
    }
    for p in chain.policies() {
        let s = &p.stats;
        println!(
            "{}: {} in, {} out, {} filtered, {} dead-lettered",
            p.runner.name(),
            s.rows_in,
            s.rows_out,
            s.rows_filtered,
            s.rows_dead_lettered
        );
    }
    Ok(())
}
