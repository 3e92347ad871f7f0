//! The lab's one error type: what could not be started or used, with the I/O cause.

/// Why a lab component could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Msg(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl LabError {
    pub fn msg(m: impl Into<String>) -> Self {
        LabError::Msg(m.into())
    }
}

pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| LabError::Io {
            context: context(),
            source,
        })
    }
}

pub type Result<T> = std::result::Result<T, LabError>;
