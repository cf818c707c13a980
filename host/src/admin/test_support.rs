//! A fake [`PolicyControl`] for the admin tests: records what it is handed and answers with a
//! canned result.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::policy::{
    Activation, Health, PolicyControl, PolicyStatus, PromotionTimings, Refusal, RefusalCode,
};

/// One `submit` call.
#[derive(Debug, Clone)]
pub(crate) struct Submission {
    pub(crate) bytes: Vec<u8>,
    pub(crate) expected_name: Option<String>,
    pub(crate) via: String,
}

/// Records submissions and counted refusals; answers `submit` with `answer`.
pub(crate) struct FakeControl {
    pub(crate) answer: Mutex<Result<Activation, Refusal>>,
    pub(crate) submissions: Mutex<Vec<Submission>>,
    pub(crate) counted: Mutex<Vec<RefusalCode>>,
    /// How long `submit` takes.
    pub(crate) delay: Duration,
    /// What `submit_timeout` says.
    pub(crate) timeout: Duration,
}

impl FakeControl {
    /// Accepts everything with [`activation`].
    pub(crate) fn accepting() -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(Ok(activation())),
            submissions: Mutex::new(Vec::new()),
            counted: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
            timeout: Duration::from_secs(10),
        })
    }

    /// Makes `submit` answer with `answer` from now on.
    pub(crate) fn answer(&self, answer: Result<Activation, Refusal>) {
        *self.answer.lock() = answer;
    }

    pub(crate) fn submissions(&self) -> Vec<Submission> {
        self.submissions.lock().clone()
    }

    pub(crate) fn counted(&self) -> Vec<RefusalCode> {
        self.counted.lock().clone()
    }
}

/// The canned activation.
pub(crate) fn activation() -> Activation {
    Activation {
        name: "clamp".into(),
        version: 7,
        previous_version: Some(6),
        sha256: "ab".repeat(32),
        signers: vec!["release".into(), "ops".into()],
        canary_batches: 3,
        timings: PromotionTimings {
            verify_ms: 1.5,
            compile_ms: 20.25,
            canary_ms: 3.0,
            activate_ms: 0.5,
            total_ms: 25.25,
        },
    }
}

/// The canned status list.
pub(crate) fn statuses() -> Vec<PolicyStatus> {
    vec![PolicyStatus {
        name: "clamp".into(),
        version: 7,
        sha256: "ab".repeat(32),
        signers: vec!["release".into()],
        activated_at: "2025-01-02T03:04:05Z".into(),
        positions: vec![0, 2],
        rows_in: 1000,
        rows_out: 990,
        errors: 1,
        swaps: 2,
    }]
}

impl PolicyControl for FakeControl {
    fn submit(
        &self,
        bundle: Vec<u8>,
        expected_name: Option<&str>,
        via: &str,
    ) -> Result<Activation, Refusal> {
        self.submissions.lock().push(Submission {
            bytes: bundle,
            expected_name: expected_name.map(str::to_owned),
            via: via.to_owned(),
        });
        std::thread::sleep(self.delay);
        self.answer.lock().clone()
    }

    fn list(&self) -> Vec<PolicyStatus> {
        statuses()
    }

    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            compilations: 4,
            refusals: [("downgrade".to_owned(), 2)].into_iter().collect(),
            swaps: 3,
        }
    }

    fn count_refusal(&self, code: RefusalCode) {
        self.counted.lock().push(code);
    }

    fn submit_timeout(&self) -> Duration {
        self.timeout
    }
}

/// A loopback admin API over a [`FakeControl`], for client tests.
pub(crate) struct TestServer {
    pub(crate) server: crate::admin::AdminServer,
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    /// Holds `admin.token` (the token `secret-token`).
    pub(crate) dir: tempfile::TempDir,
}

impl TestServer {
    /// Serves `control` on 127.0.0.1 (any port) with the token `secret-token`.
    pub(crate) async fn start(control: Arc<FakeControl>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "secret-token\n").unwrap();
        let config = crate::config::AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: Some(dir.path().join("admin.token")),
            ..crate::config::AdminConfig::default()
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let server = crate::admin::serve(
            &config,
            std::path::Path::to_path_buf,
            control,
            shutdown.clone(),
        )
        .await
        .unwrap();
        Self {
            server,
            shutdown,
            dir,
        }
    }

    /// The token file.
    pub(crate) fn token_file(&self) -> std::path::PathBuf {
        self.dir.path().join("admin.token")
    }
}
