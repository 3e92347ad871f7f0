//! The emulators and their shared HTTP kit.
//!
//! An emulator is its routes and its state: it binds a [`Listener`] on a free loopback port,
//! builds its state (which may need the URL), and hands [`Listener::serve`] one function from
//! [`Request`] to [`Response`]. The kit parses requests (query strings percent-decoded, headers,
//! body), keeps the request log the tests read (method, path, status; never a header value nor a
//! hidden query parameter), answers in one write ([`http`]), and stops every thread on drop.
//! [`Paging`] and [`time`] hold what paginated lists and timestamps have in common.
//!
//! The emulators: PocketID ([`pocketid`]), Forgejo ([`forgejo`]), Loki ([`loki`]) and the alerts'
//! webhook receiver ([`webhook`]).

pub mod forgejo;
pub mod http;
pub mod loki;
mod paging;
pub mod pocketid;
mod request;
mod server;
pub(crate) mod time;
pub mod webhook;

// The kit is the emulators' own; of it, only the request log's entries are seen outside.
pub(crate) use paging::Paging;
pub(crate) use request::{encode_query, parse_query, percent_decode, Body, Request, Response};
pub use server::LoggedRequest;
pub(crate) use server::{Emulator, Listener, Options};
