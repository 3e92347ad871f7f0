//! The stand-in homelab (`sso-lab`): real OpenBao and OpenSSH servers plus PocketID and Forgejo
//! emulators, each on a free loopback port, started by tests and the demo and stopped on drop.

pub mod ansible;
pub mod catalog;
pub mod faults;
pub mod fixtures;
pub mod forgejo;
pub mod forgejo_releases;
pub mod forgejo_settings;
pub mod http;
pub mod module;
pub mod openbao;
pub mod pocketid;
pub mod proc;
pub mod sshd;
pub mod stack;
pub mod tools;

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
