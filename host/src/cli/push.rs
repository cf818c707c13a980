//! `weir push`: uploads a signed bundle to a running host's admin API and reports the promotion.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::admin_client::{AdminTarget, UploadAnswer, read_token};
use crate::policy::Activation;
use crate::policy::bundle::{Bundle, BundleCaps, check_policy_name};

/// Arguments of `weir push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminTarget,
    /// A file holding the admin API's bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// The policy name to upload as (default: the name signed in the bundle).
    #[arg(long)]
    pub name: Option<String>,
    /// How long to wait for the host's answer (verification, compilation, canary and swap).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The signed bundle (`.wpol`).
    pub bundle: PathBuf,
}

pub(crate) fn run(args: &PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => bundle_name(&bytes, &args.bundle)?,
    };
    check_policy_name(&name).map_err(anyhow::Error::msg)?;
    let token = read_token(&args.token_file)?;
    let client = args.admin.client(args.timeout)?;
    let started = Instant::now();
    match client.upload(&name, &token, &bytes)? {
        UploadAnswer::Activated(activation) => {
            println!("{}", describe(&activation, started.elapsed()));
            Ok(())
        }
        UploadAnswer::Refused(status, body) => {
            let e = body.error;
            bail!(
                "{} refused {} ({}, HTTP {status}): {}",
                client.base(),
                args.bundle.display(),
                e.code,
                e.reason
            )
        }
    }
}

/// The policy name signed in a bundle. Only the container is parsed (no size caps: the host
/// applies its own) and only the manifest's `name` is read; the host verifies everything.
fn bundle_name(bytes: &[u8], path: &Path) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let caps = BundleCaps {
        max_module_bytes: usize::MAX,
        max_manifest_bytes: usize::MAX,
        max_signatures: usize::MAX,
    };
    let bundle = Bundle::parse(bytes, &caps)
        .map_err(|r| anyhow::anyhow!("{} ({}): {}", path.display(), r.code, r.reason))?;
    let named: Named = serde_json::from_slice(bundle.manifest_bytes()).with_context(|| {
        format!(
            "{}: the manifest has no readable name (use --name)",
            path.display()
        )
    })?;
    Ok(named.name)
}

/// `activated NAME version V (was U) sha256 … signed by A, B` and the timings.
fn describe(a: &Activation, round_trip: Duration) -> String {
    let was = match a.previous_version {
        Some(v) => format!("was {v}"),
        None => "first version".to_owned(),
    };
    let sha = a.sha256.get(..16).unwrap_or(&a.sha256);
    let signers = if a.signers.is_empty() {
        "nobody".to_owned()
    } else {
        a.signers.join(", ")
    };
    let t = &a.timings;
    format!(
        "activated {} version {} ({was}) sha256 {sha} signed by {signers}\n  \
         verify {:.1} ms, compile {:.1} ms, canary {:.1} ms ({} batches), activate {:.1} ms, \
         total {:.1} ms; round trip {:.1} ms",
        a.name,
        a.version,
        t.verify_ms,
        t.compile_ms,
        t.canary_ms,
        a.canary_batches,
        t.activate_ms,
        t.total_ms,
        round_trip.as_secs_f64() * 1e3,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;

    use super::*;
    use crate::admin::test_support::{FakeControl, TestServer, activation};
    use crate::cli::{Cli, Command};
    use crate::policy::bundle::SignatureRecord;
    use crate::policy::{Refusal, RefusalCode};

    /// A container with a manifest naming `name` (not a verifiable bundle: the fake registry
    /// does not look).
    fn bundle_bytes(name: &str) -> Vec<u8> {
        let manifest = serde_json::json!({"format": 1, "name": name, "version": 3});
        let signature = SignatureRecord {
            key_id: [1; 32],
            signature: [2; 64],
        };
        Bundle::new(
            serde_json::to_vec(&manifest).unwrap(),
            vec![signature],
            b"\0asm\x01\0\0\0".to_vec(),
        )
        .encode(&BundleCaps::default())
        .unwrap()
    }

    fn args(server: &TestServer, bundle: &Path) -> PushArgs {
        PushArgs {
            admin: AdminTarget {
                to: server.server.url(),
                ca_cert: None,
            },
            token_file: server.token_file(),
            name: None,
            timeout: Duration::from_secs(10),
            bundle: bundle.to_path_buf(),
        }
    }

    #[test]
    fn admin_push_reads_the_name_from_the_bundle() {
        let path = Path::new("clamp.wpol");
        assert_eq!(bundle_name(&bundle_bytes("clamp"), path).unwrap(), "clamp");
        let e = bundle_name(b"not a bundle at all, but long enough", path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("clamp.wpol (malformed)"), "{e}");
    }

    #[test]
    fn admin_push_describes_the_activation() {
        let text = describe(&activation(), Duration::from_micros(31_250));
        assert_eq!(
            text,
            "activated clamp version 7 (was 6) sha256 abababababababab signed by release, ops\n  \
             verify 1.5 ms, compile 20.2 ms, canary 3.0 ms (3 batches), activate 0.5 ms, \
             total 25.2 ms; round trip 31.2 ms"
        );
        let mut first = activation();
        first.previous_version = None;
        assert!(describe(&first, Duration::ZERO).contains("version 7 (first version)"));
    }

    #[test]
    fn admin_push_and_policies_are_subcommands() {
        let cli = Cli::try_parse_from([
            "weir",
            "push",
            "--to",
            "http://127.0.0.1:7878",
            "--token-file",
            "t",
            "--name",
            "clamp",
            "b.wpol",
        ])
        .unwrap();
        let Command::Push(a) = cli.command else {
            panic!("not push")
        };
        assert_eq!(a.name.as_deref(), Some("clamp"));
        assert_eq!(a.timeout, Duration::from_secs(120));
        let cli =
            Cli::try_parse_from(["weir", "policies", "--to", "http://h:1", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Policies(ref p) if p.json));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_push_uploads_and_reports_refusals() {
        let control = FakeControl::accepting();
        let server = TestServer::start(Arc::clone(&control)).await;
        let bundle = server.dir.path().join("clamp.wpol");
        std::fs::write(&bundle, bundle_bytes("clamp")).unwrap();
        let a = args(&server, &bundle);
        let fake = Arc::clone(&control);
        tokio::task::spawn_blocking(move || {
            run(&a).unwrap();
            let subs = fake.submissions();
            assert_eq!(subs.len(), 1);
            assert_eq!(subs[0].expected_name.as_deref(), Some("clamp"));
            assert_eq!(subs[0].bytes, bundle_bytes("clamp"));

            // --name overrides the bundle's name (the host then checks they agree).
            let renamed = PushArgs {
                name: Some("other".into()),
                ..clone_args(&a)
            };
            run(&renamed).unwrap();
            assert_eq!(
                fake.submissions()[1].expected_name.as_deref(),
                Some("other")
            );

            fake.answer(Err(Refusal::new(
                RefusalCode::Downgrade,
                "upload of clamp",
                "version 3 is not above 7",
            )));
            let e = format!("{:#}", run(&a).unwrap_err());
            assert!(
                e.contains("(downgrade, HTTP 409): version 3 is not above 7"),
                "{e}"
            );

            // A wrong token: refused before the registry sees it.
            std::fs::write(&a.token_file, "guess\n").unwrap();
            let e = format!("{:#}", run(&a).unwrap_err());
            assert!(
                e.contains("unauthorized") && e.contains("wrong token"),
                "{e}"
            );
            assert_eq!(fake.submissions().len(), 3);

            let bad = PushArgs {
                name: Some("Bad/Name".into()),
                ..clone_args(&a)
            };
            let e = run(&bad).unwrap_err().to_string();
            assert!(e.contains("Bad/Name"), "{e}");
        })
        .await
        .unwrap();
        server.shutdown.cancel();
    }

    fn clone_args(a: &PushArgs) -> PushArgs {
        PushArgs {
            admin: a.admin.clone(),
            token_file: a.token_file.clone(),
            name: a.name.clone(),
            timeout: a.timeout,
            bundle: a.bundle.clone(),
        }
    }

    #[test]
    fn admin_push_connection_errors_name_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("clamp.wpol");
        std::fs::write(&bundle, bundle_bytes("clamp")).unwrap();
        let token = dir.path().join("t");
        std::fs::write(&token, "x").unwrap();
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = PushArgs {
            admin: AdminTarget {
                to: format!("http://127.0.0.1:{port}"),
                ca_cert: None,
            },
            token_file: token,
            name: None,
            timeout: Duration::from_secs(5),
            bundle,
        };
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(
            e.contains(&format!("http://127.0.0.1:{port}/v1/policies/clamp")),
            "{e}"
        );
    }
}
