//! The contract between whoever hands the host a new policy version (the admin API, the
//! watched directory, the CLI) and the registry that verifies, compiles, canaries and swaps it:
//! [`PolicyControl`], its answers and its refusals with their stable codes.

use std::time::Duration;

use serde::Serialize;

/// Why a bundle was refused. The string form ([`RefusalCode::as_str`]) is stable: clients,
/// logs and tests match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// A signature does not verify, or the module does not match the signed hash or length.
    BadSignature,
    /// No signature from a trusted key, a signer not allowed to sign this policy name, or
    /// fewer valid signers than the name's threshold.
    UntrustedKey,
    /// Signed by a revoked key, or the module's hash is revoked.
    Revoked,
    /// The version is at or below the highest version accepted for this policy.
    Downgrade,
    /// The bundle, its manifest or its module is over a size cap.
    TooLarge,
    /// The bytes are not a well-formed bundle (or the module is not WebAssembly, or the module's
    /// own manifest disagrees with the signed one).
    Malformed,
    /// The bundle or module speaks another ABI version.
    AbiMismatch,
    /// The new version's input or output schema does not fit the running chain and sinks.
    SchemaIncompatible,
    /// The new version failed on recent live batches; the old version stays.
    CanaryFailed,
    /// Missing or wrong bearer token.
    Unauthorized,
    /// The bundle's expiry time has passed.
    Expired,
    /// No policy of that name runs here.
    NotFound,
    /// The host could not finish the operation (compile failure, I/O error persisting state).
    Internal,
}

impl RefusalCode {
    /// Every code, for documentation and tests.
    pub const ALL: [Self; 13] = [
        Self::BadSignature,
        Self::UntrustedKey,
        Self::Revoked,
        Self::Downgrade,
        Self::TooLarge,
        Self::Malformed,
        Self::AbiMismatch,
        Self::SchemaIncompatible,
        Self::CanaryFailed,
        Self::Unauthorized,
        Self::Expired,
        Self::NotFound,
        Self::Internal,
    ];

    /// The stable code.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::UntrustedKey => "untrusted_key",
            Self::Revoked => "revoked",
            Self::Downgrade => "downgrade",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AbiMismatch => "abi_mismatch",
            Self::SchemaIncompatible => "schema_incompatible",
            Self::CanaryFailed => "canary_failed",
            Self::Unauthorized => "unauthorized",
            Self::Expired => "expired",
            Self::NotFound => "not_found",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the admin API answers with.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::BadSignature | Self::UntrustedKey | Self::Revoked | Self::Expired => 403,
            Self::NotFound => 404,
            Self::Downgrade => 409,
            Self::TooLarge => 413,
            Self::Malformed | Self::AbiMismatch | Self::SchemaIncompatible | Self::CanaryFailed => {
                422
            }
            Self::Internal => 500,
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused bundle: the stable code, what was refused, and a sentence saying why.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{subject}: refused ({code}): {reason}")]
pub struct Refusal {
    /// The stable code.
    pub code: RefusalCode,
    /// What was refused: a file name, `upload of <name>`, a policy name.
    pub subject: String,
    /// Why, for humans.
    pub reason: String,
}

impl Refusal {
    /// A refusal of `subject` with `code` and `reason`.
    #[must_use]
    pub fn new(code: RefusalCode, subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            code,
            subject: subject.into(),
            reason: reason.into(),
        }
    }
}

/// How long each step of a promotion took, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct PromotionTimings {
    /// Parsing, signature and trust checks, rollback check.
    pub verify_ms: f64,
    /// Compiling (or loading an authenticated cache entry) and linking, on a background thread.
    pub compile_ms: f64,
    /// Running the new version over recent live batches.
    pub canary_ms: f64,
    /// From the end of the canary until the chain runs the new version (the next batch
    /// boundary; bounded by `activation_timeout` when no batch arrives).
    pub activate_ms: f64,
    /// The whole promotion, from receiving the bytes.
    pub total_ms: f64,
}

/// A version that became active.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Activation {
    /// Policy name.
    pub name: String,
    /// The new version.
    pub version: u64,
    /// The version it replaced, if one ran.
    pub previous_version: Option<u64>,
    /// Module sha256, hex.
    pub sha256: String,
    /// Names of the keys whose signatures verified.
    pub signers: Vec<String>,
    /// Recent live batches the canary ran.
    pub canary_batches: usize,
    /// Step timings.
    pub timings: PromotionTimings,
}

/// One running policy, as `GET /v1/policies` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PolicyStatus {
    /// Policy name.
    pub name: String,
    /// Active version.
    pub version: u64,
    /// Module sha256, hex.
    pub sha256: String,
    /// Names of the keys that signed the active version.
    pub signers: Vec<String>,
    /// When the active version became active (RFC 3339, UTC).
    pub activated_at: String,
    /// Chain positions running this policy.
    pub positions: Vec<usize>,
    /// Rows received since the host started (all versions).
    pub rows_in: u64,
    /// Rows passed on.
    pub rows_out: u64,
    /// Batches the policy failed on.
    pub errors: u64,
    /// Versions activated since the host started (excluding the first).
    pub swaps: u64,
}

/// What `GET /healthz` reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct Health {
    /// `ok` while the pipeline runs.
    pub status: String,
    /// Module compilations since start (including authenticated cache loads). Refused bundles
    /// never add to it.
    pub compilations: u64,
    /// Refusals since start, by code.
    pub refusals: std::collections::BTreeMap<String, u64>,
    /// Successful promotions since start.
    pub swaps: u64,
}

/// Accepts new policy versions and reports what runs. Implemented by the registry; used by the
/// admin API and the watched directory. Methods block (verification and compilation run on the
/// caller's thread or a background one): call them from a blocking context.
pub trait PolicyControl: Send + Sync + 'static {
    /// Verifies, compiles, canaries and activates `bundle`. `expected_name` is the name in the
    /// upload URL (the bundle's signed name must equal it); `via` says where it came from
    /// (for logs).
    ///
    /// # Errors
    /// A [`Refusal`]; the running version is unchanged.
    fn submit(
        &self,
        bundle: Vec<u8>,
        expected_name: Option<&str>,
        via: &str,
    ) -> Result<Activation, Refusal>;

    /// What runs.
    fn list(&self) -> Vec<PolicyStatus>;

    /// Health and counters.
    fn health(&self) -> Health;

    /// Counts a refusal made before [`PolicyControl::submit`] was reached (unauthorized,
    /// too large), so that `health` shows every refusal.
    fn count_refusal(&self, code: RefusalCode);

    /// The longest time a submit may take (for HTTP timeouts).
    fn submit_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}
