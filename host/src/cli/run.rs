//! `weir run` and `weir check`: the pipeline, from a config file or from a quick command line.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pipeline::{Plan, Progress, RunSummary};

/// The input and output of the quick form, without a config file.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickArgs {
    /// Input files (globs allowed), or `-` for NDJSON on stdin. Repeat for several sources.
    #[arg(long = "input", conflicts_with = "config")]
    pub inputs: Vec<String>,
    /// The input format (default: from the file extension).
    #[arg(long, value_enum)]
    pub format: Option<QuickFormat>,
    /// A signed policy bundle (`.wpol`, from `weir sign`); repeat for a chain, applied in
    /// order.
    #[arg(long = "policy", conflicts_with = "config")]
    pub policies: Vec<PathBuf>,
    /// A public key (`.pub`, from `weir keygen`) trusted to sign the policies; repeat for
    /// several keys.
    #[arg(long = "trust", conflicts_with = "config")]
    pub trust: Vec<PathBuf>,
    /// Serve the admin API here (e.g. 127.0.0.1:7878), so new versions can be pushed.
    #[arg(long, conflicts_with = "config")]
    pub admin_listen: Option<String>,
    /// The admin API's bearer token file (needed to push).
    #[arg(long, conflicts_with = "config", requires = "admin_listen")]
    pub admin_token_file: Option<PathBuf>,
    /// Parameters (JSON object) for the policies, in the same order as `--policy`.
    #[arg(long = "params", conflicts_with = "config")]
    pub params: Vec<String>,
    /// Output: a directory for Parquet files, `-` for stdout, or a `.arrow`/`.arrows` file.
    #[arg(long, conflicts_with = "config")]
    pub output: Option<PathBuf>,
    /// How `--output -` prints.
    #[arg(long, value_enum, default_value = "table")]
    pub stdout_format: QuickStdout,
    /// Largest batch, in rows.
    #[arg(long)]
    pub batch_rows: Option<usize>,
    /// The state directory (default: `<output>/.weir-state`, or `weir-state` for stdout).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Input formats of the quick form.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum QuickFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file or stream.
    ArrowIpc,
}

/// How the quick form prints to stdout.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum QuickStdout {
    /// A table per batch.
    Table,
    /// One JSON object per row.
    Ndjson,
}

/// Arguments of `weir run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Without a config: input, policies and output on the command line.
    #[command(flatten)]
    pub quick: QuickArgs,
    /// Also write the run summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments of `weir check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Builds the configuration of the quick form, as TOML, so it is validated like a file.
fn quick_config(q: &QuickArgs) -> anyhow::Result<Config> {
    use toml::{Table, Value};
    if q.inputs.is_empty() {
        bail!(
            "give --config FILE, or --input PATH [--policy P.wpol ... --trust KEY.pub] \
             --output DIR|-"
        );
    }
    let Some(output) = &q.output else {
        bail!(
            "--output is missing: a directory for Parquet files, `-` for stdout, or a .arrow file"
        );
    };
    if q.params.len() > q.policies.len() {
        bail!(
            "{} --params for {} --policy",
            q.params.len(),
            q.policies.len()
        );
    }
    let mut root = Table::new();
    let mut sources = Table::new();
    for (i, input) in q.inputs.iter().enumerate() {
        let mut s = Table::new();
        if input == "-" {
            s.insert("type".into(), "stdin".into());
        } else {
            s.insert("type".into(), "file".into());
            s.insert("path".into(), input.clone().into());
            if let Some(f) = q.format {
                let name = match f {
                    QuickFormat::Ndjson => "ndjson",
                    QuickFormat::Csv => "csv",
                    QuickFormat::Parquet => "parquet",
                    QuickFormat::ArrowIpc => "arrow_ipc",
                };
                s.insert("format".into(), name.into());
            }
        }
        let name = if q.inputs.len() == 1 {
            "input".to_owned()
        } else {
            format!("input{i}")
        };
        sources.insert(name, Value::Table(s));
    }
    root.insert("sources".into(), Value::Table(sources));
    if !q.policies.is_empty() && q.trust.is_empty() {
        bail!(
            "--trust KEY.pub is missing: policies run only when signed by a trusted key \
             (make one with `weir keygen`, sign with `weir sign`)"
        );
    }
    let mut keys = Vec::new();
    for path in &q.trust {
        let mut k = Table::new();
        let name = path
            .file_stem()
            .map_or_else(|| "key".to_owned(), |s| s.to_string_lossy().into_owned());
        k.insert("name".into(), name.into());
        k.insert("public_key".into(), path.display().to_string().into());
        keys.push(Value::Table(k));
    }
    if !keys.is_empty() {
        let mut trust = Table::new();
        trust.insert("keys".into(), Value::Array(keys));
        root.insert("trust".into(), Value::Table(trust));
    }
    if let Some(listen) = &q.admin_listen {
        let mut admin = Table::new();
        admin.insert("listen".into(), listen.clone().into());
        if let Some(token) = &q.admin_token_file {
            admin.insert("token_file".into(), token.display().to_string().into());
        }
        root.insert("admin".into(), Value::Table(admin));
    }
    let mut policies = Vec::new();
    for (i, bundle) in q.policies.iter().enumerate() {
        let mut p = Table::new();
        let key = if bundle.extension().is_some_and(|e| e == "wasm") {
            "module"
        } else {
            "bundle"
        };
        p.insert(key.into(), bundle.display().to_string().into());
        if let Some(params) = q.params.get(i) {
            let json: serde_json::Value = serde_json::from_str(params)
                .with_context(|| format!("--params #{}: not JSON: {params}", i + 1))?;
            let table: Table = serde_json::from_value(json).with_context(|| {
                format!(
                    "--params #{}: must be a JSON object of TOML-compatible values",
                    i + 1
                )
            })?;
            p.insert("params".into(), Value::Table(table));
        }
        policies.push(Value::Table(p));
    }
    root.insert("policies".into(), Value::Array(policies));
    let mut sink = Table::new();
    let out = output.display().to_string();
    let state_dir = q.state_dir.clone().unwrap_or_else(|| {
        if out == "-" {
            PathBuf::from("weir-state")
        } else {
            output.join(".weir-state")
        }
    });
    let is_ipc = ["arrow", "arrows", "ipc"]
        .iter()
        .any(|e| output.extension().is_some_and(|x| x == *e));
    if out == "-" {
        sink.insert("type".into(), "stdout".into());
        let format = match q.stdout_format {
            QuickStdout::Table => "table",
            QuickStdout::Ndjson => "ndjson",
        };
        sink.insert("format".into(), format.into());
    } else if is_ipc {
        sink.insert("type".into(), "arrow_ipc".into());
        sink.insert("path".into(), out.clone().into());
        let stream = output.extension().is_some_and(|x| x == "arrows");
        sink.insert(
            "format".into(),
            if stream { "stream" } else { "file" }.into(),
        );
    } else {
        sink.insert("type".into(), "parquet".into());
        sink.insert("path".into(), out.clone().into());
    }
    let mut sinks = Table::new();
    sinks.insert("output".into(), Value::Table(sink));
    root.insert("sinks".into(), Value::Table(sinks));
    let mut pipeline = Table::new();
    pipeline.insert("state_dir".into(), state_dir.display().to_string().into());
    if let Some(rows) = q.batch_rows {
        pipeline.insert(
            "batch_max_rows".into(),
            i64::try_from(rows).unwrap_or(i64::MAX).into(),
        );
    }
    root.insert("pipeline".into(), Value::Table(pipeline));
    if out != "-" && !is_ipc {
        let mut dl = Table::new();
        dl.insert(
            "path".into(),
            output.join("dead-letter").display().to_string().into(),
        );
        root.insert("dead_letter".into(), Value::Table(dl));
    }
    let text = toml::to_string(&root).context("building the quick configuration")?;
    Ok(Config::parse(&text, "<command line>", None)?)
}

fn load_config(config: Option<&Path>, quick: &QuickArgs) -> anyhow::Result<Config> {
    match config {
        Some(path) => Ok(Config::load(path)?),
        None => quick_config(quick),
    }
}

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let plan = Plan::prepare_check(config)?;
    for line in plan.describe() {
        println!("{line}");
    }
    println!("{}: OK", args.config.display());
    Ok(())
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(args.config.as_deref(), &args.quick)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weir-io")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let plan = Plan::prepare(config)?;
    // An inferred schema is worth a look (and a copy into the config): print it plainly.
    let mut inferred = false;
    for line in plan.describe() {
        if !line.starts_with(' ') {
            inferred = line.starts_with("source ") && line.contains("INFERRED");
        }
        if inferred {
            eprintln!("weir: {line}");
        } else if line.starts_with("policy ") {
            tracing::info!("{line}");
        } else {
            tracing::debug!("{line}");
        }
    }
    let mut pipeline = plan.open()?;
    let total = pipeline.total_bytes();
    let progress = Progress::default();
    let summary = runtime.block_on(async {
        pipeline.start_admin().await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        let bar = progress_bar(total, args.no_progress);
        let ticker = bar.clone().map(|bar| {
            let bytes = std::sync::Arc::clone(&progress.bytes_read);
            tokio::spawn(async move {
                loop {
                    bar.set_position(bytes.load(Ordering::Relaxed));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        let summary = pipeline.run(shutdown, &progress, started).await;
        if let Some(t) = ticker {
            t.abort();
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(summary)
    })?;
    // Worker threads blocked on stdin cannot be joined; don't wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    eprint!("{summary}");
    write_summary(args.summary_json.as_deref(), &summary)?;
    if !summary.errors.is_empty() {
        bail!("the run ended with {} error(s)", summary.errors.len());
    }
    Ok(())
}

fn write_summary(path: Option<&Path>, summary: &RunSummary) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_vec_pretty(summary).context("encoding the summary")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn progress_bar(total: Option<u64>, disabled: bool) -> Option<indicatif::ProgressBar> {
    let total = total?;
    if disabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("the template is valid"),
    );
    Some(bar)
}

/// First SIGINT/SIGTERM: stop the sources and drain. A second one: leave at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    let mut count = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        count += 1;
        if count == 1 {
            eprintln!("weir: stopping: draining, flushing and finalizing (signal again to abort)");
            shutdown.cancel();
        } else {
            eprintln!("weir: aborted; files being written stay under temporary names");
            std::process::exit(130);
        }
    }
}
