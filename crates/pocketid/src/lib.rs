//! PocketID admin REST client (on the shared `httpx` plumbing) and the logic of the
//! `pocketid_client`, `pocketid_api_key` and `pocketid_login_code` modules. See `contracts/pocketid-api.md`.

pub mod api;
pub mod api_key;
pub mod client;
pub mod duration;
pub mod login_code;
pub mod login_code_ssh;
mod login_code_tty;

pub use api::{ApiError, Connection, MintedSecret, PocketIdApi, Server, ServerVersion};
pub use api_key::PocketIdApiKey;
pub use client::PocketIdClient;
pub use login_code::PocketIdLoginCode;
