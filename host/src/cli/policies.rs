//! `weir policies`: what a running host's policies are (versions, signers, counters).

use std::time::Duration;

use comfy_table::{CellAlignment, Table};

use super::admin_client::AdminTarget;
use crate::policy::PolicyStatus;

/// Arguments of `weir policies`.
#[derive(Debug, clap::Args)]
pub struct PoliciesArgs {
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminTarget,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &PoliciesArgs) -> anyhow::Result<()> {
    let client = args.admin.client(Duration::from_secs(30))?;
    let (policies, raw) = client.policies()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else if policies.is_empty() {
        println!("no policies run at {}", client.base());
    } else {
        println!("{}", table(&policies));
    }
    Ok(())
}

/// One row per policy.
fn table(policies: &[PolicyStatus]) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "name",
        "version",
        "sha256",
        "signers",
        "activated",
        "positions",
        "rows in",
        "rows out",
        "errors",
        "swaps",
    ]);
    for p in policies {
        let positions: Vec<String> = p.positions.iter().map(ToString::to_string).collect();
        table.add_row([
            p.name.clone(),
            p.version.to_string(),
            p.sha256.get(..16).unwrap_or(&p.sha256).to_owned(),
            p.signers.join(", "),
            p.activated_at.clone(),
            positions.join(", "),
            p.rows_in.to_string(),
            p.rows_out.to_string(),
            p.errors.to_string(),
            p.swaps.to_string(),
        ]);
    }
    for column in [1, 6, 7, 8, 9] {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::test_support::{FakeControl, TestServer, statuses};
    use crate::cli::admin_client::AdminClient;

    #[test]
    fn admin_policies_table_shows_every_column() {
        let text = table(&statuses()).to_string();
        for want in [
            "name",
            "rows in",
            "swaps",
            "clamp",
            "abababababababab",
            "release",
            "2025-01-02T03:04:05Z",
            "0, 2",
            "1000",
            "990",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert!(
            !text.contains(&"ab".repeat(9)),
            "the sha256 is cut to 16 digits:\n{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_policies_lists_a_running_host() {
        let server = TestServer::start(FakeControl::accepting()).await;
        let url = server.server.url();
        tokio::task::spawn_blocking(move || {
            for json in [false, true] {
                let args = PoliciesArgs {
                    admin: AdminTarget {
                        to: url.clone(),
                        ca_cert: None,
                    },
                    json,
                };
                run(&args).unwrap();
            }
            let client = AdminClient::new(&url, None, Duration::from_secs(5)).unwrap();
            assert_eq!(client.policies().unwrap().0, statuses());
        })
        .await
        .unwrap();
        server.shutdown.cancel();
    }
}
