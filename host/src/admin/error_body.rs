//! [`ErrorBody`]: the JSON of every error the admin API answers, and of `refused/<file>.json`
//! in the watched directory.

use serde::{Deserialize, Serialize};

use crate::policy::Refusal;

/// `{"error": {"code": "...", "reason": "...", "subject": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code: a [`crate::policy::RefusalCode`] string, or `method_not_allowed`.
    pub code: String,
    /// Why, for humans.
    pub reason: String,
    /// What was refused (an upload, a file, a path).
    pub subject: String,
}

impl ErrorBody {
    /// An error with `code`, `subject` and `reason`.
    #[must_use]
    pub fn new(
        code: impl Into<String>,
        subject: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                reason: reason.into(),
                subject: subject.into(),
            },
        }
    }
}

impl From<&Refusal> for ErrorBody {
    fn from(refusal: &Refusal) -> Self {
        Self::new(refusal.code.as_str(), &refusal.subject, &refusal.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RefusalCode;

    #[test]
    fn admin_error_body_shape() {
        let r = Refusal::new(RefusalCode::Downgrade, "upload of clamp", "version 3 <= 4");
        let json = serde_json::to_value(ErrorBody::from(&r)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "code": "downgrade", "reason": "version 3 <= 4", "subject": "upload of clamp"
            }})
        );
    }
}
