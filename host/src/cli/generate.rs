//! `weir generate`: write realistic test input, for demos, benchmarks and trying a config.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::sources::generate::write_sensor_ndjson;

/// Arguments of `weir generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to write. Today: `sensors` (NDJSON readings from four sensor models).
    #[arg(value_enum)]
    pub kind: GenerateWhat,
    /// Lines to write.
    #[arg(long, default_value_t = 10_000)]
    pub rows: u64,
    /// Random seed (same seed, same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Lines in 1000 that do not fit the schema, on purpose.
    #[arg(long, default_value_t = 2)]
    pub garbage_per_mille: u32,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// What `weir generate` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenerateWhat {
    /// Sensor readings as NDJSON; see `sources::generate::SENSOR_NDJSON_COLUMNS` for the schema.
    Sensors,
}

pub(crate) fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let GenerateWhat::Sensors = args.kind;
    let stats = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let stats = write_sensor_ndjson(&mut w, args.rows, args.seed, args.garbage_per_mille)
                .with_context(|| format!("writing {}", path.display()))?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            stats
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let stats = write_sensor_ndjson(&mut w, args.rows, args.seed, args.garbage_per_mille)
                .context("writing to stdout")?;
            w.flush().context("writing to stdout")?;
            stats
        }
    };
    eprintln!(
        "weir: wrote {} lines ({} garbage on purpose), {:.1} MB",
        stats.lines,
        stats.garbage,
        stats.bytes as f64 / 1e6
    );
    Ok(())
}
