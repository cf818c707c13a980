//! `weir generate`: write realistic test input, for demos, benchmarks and trying a config.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::sources::generate::{NdjsonStats, write_sensor_ndjson};

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
    /// Lines per second (default: as fast as possible), for a live-looking stream.
    #[arg(long)]
    pub rate: Option<u64>,
}

/// What `weir generate` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenerateWhat {
    /// Sensor readings as NDJSON; see `sources::generate::SENSOR_NDJSON_COLUMNS` for the schema.
    Sensors,
}

/// Writes `args.rows` lines to `w`, paced to `args.rate` lines per second when given (in
/// 20 slices a second, each from its own seed).
fn write(w: &mut impl std::io::Write, args: &GenerateArgs) -> std::io::Result<NdjsonStats> {
    let Some(rate) = args.rate.filter(|r| *r > 0) else {
        let stats = write_sensor_ndjson(w, args.rows, args.seed, args.garbage_per_mille)?;
        w.flush()?;
        return Ok(stats);
    };
    let slice = (rate / 20).max(1);
    let started = std::time::Instant::now();
    let mut total = NdjsonStats::default();
    let (mut written, mut n) = (0, 0);
    while written < args.rows {
        let lines = slice.min(args.rows - written);
        let stats =
            write_sensor_ndjson(w, lines, args.seed.wrapping_add(n), args.garbage_per_mille)?;
        w.flush()?;
        total.lines += stats.lines;
        total.garbage += stats.garbage;
        total.bytes += stats.bytes;
        written += lines;
        n += 1;
        let due = std::time::Duration::from_secs_f64(written as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(total)
}

pub(crate) fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let GenerateWhat::Sensors = args.kind;
    let stats = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            write(&mut w, args).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut w, args).context("writing to stdout")?
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
