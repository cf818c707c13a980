//! The `weir` command line: argument parsing and one module per subcommand.

mod admin_client;
mod capture;
mod eval;
mod generate;
mod inspect;
mod keygen;
mod policies;
mod push;
mod run;
mod sign;
mod status;
mod verify;

use clap::{Parser, Subcommand};

pub use admin_client::AdminTarget;
pub use capture::CaptureArgs;
pub use eval::EvalArgs;
pub use generate::{GenerateArgs, GenerateWhat};
pub use inspect::InspectArgs;
pub use keygen::KeygenArgs;
pub use policies::PoliciesArgs;
pub use push::PushArgs;
pub use run::{CheckArgs, QuickArgs, QuickFormat, QuickStdout, RunArgs};
pub use sign::SignArgs;
pub use status::StatusArgs;
pub use verify::VerifyArgs;

/// Weir: a WebAssembly edge preprocessing runtime.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber syntax); `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "weir_host=info,warn")]
    pub log: String,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a policy module (manifest, imports, exports), compile it and print what it declares.
    Inspect(InspectArgs),
    /// Run one or more policies over NDJSON records or generated data and show before and after.
    Eval(EvalArgs),
    /// Run the pipeline: sources, batching, the policy chain and sinks, until the inputs end
    /// or SIGINT/SIGTERM.
    Run(RunArgs),
    /// Validate a config file, open its sources and compile its policies, without running.
    Check(CheckArgs),
    /// Write realistic test input (sensor NDJSON with outliers and some garbage lines).
    Generate(GenerateArgs),
    /// Make an Ed25519 signing key pair (NAME.key, NAME.pub) for policy bundles.
    Keygen(KeygenArgs),
    /// Sign a policy module into a bundle (`.wpol`) with one or more keys.
    Sign(SignArgs),
    /// Verify a bundle against trusted keys (and rollback state), as a host would.
    Verify(VerifyArgs),
    /// Upload a signed bundle to a running host's admin API; prints the promotion's timings.
    Push(PushArgs),
    /// List the policies a running host runs (versions, signers, counters).
    Policies(PoliciesArgs),
    /// Show a running host's metrics as tables: sources, policies, errors, batch latency, swaps
    /// and refusals, capture, queues, memory.
    Status(StatusArgs),
    /// Show live network flows on some interfaces (eBPF; needs root), top-like.
    Capture(CaptureArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    ///
    /// # Errors
    /// Whatever the subcommand reports.
    pub fn run(self) -> anyhow::Result<()> {
        self.init_logging();
        match self.command {
            Command::Inspect(args) => inspect::run(&args),
            Command::Eval(args) => eval::run(&args),
            Command::Run(args) => run::run(&args),
            Command::Check(args) => run::check(&args),
            Command::Generate(args) => generate::run(&args),
            Command::Keygen(args) => keygen::run(&args),
            Command::Sign(args) => sign::run(&args),
            Command::Verify(args) => verify::run(&args),
            Command::Push(args) => push::run(&args),
            Command::Policies(args) => policies::run(&args),
            Command::Status(args) => status::run(&args),
            Command::Capture(args) => capture::run(&args),
        }
    }

    fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&self.log));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr);
        // A second initialization (tests calling `run` twice) is harmless; ignore it.
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}
