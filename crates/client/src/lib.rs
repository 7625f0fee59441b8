//! A small HTTP/1 JSON client for cloison's APIs, over TCP to one or more controllers
//! or over a Unix socket to an agent. Error responses are decoded from the APIs' common
//! body `{"error":{"code":..,"message":..}}` into [`ClientError::Api`].

mod api;
mod client;
mod error;
mod groups;
mod publications;
mod target;
mod watch;

pub use client::Client;
pub use error::ClientError;
pub use hyper::Method;
