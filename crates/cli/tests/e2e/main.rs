//! End-to-end tests of the single-host product: `cloison up` in a throw-away host
//! namespace, containers as further namespaces, driven through the CLI and the
//! agent socket. They need root, iproute2, util-linux and ping, and fail (never
//! pass) without them.

mod harness;
mod input;
mod ipam;
mod isolation;
mod names;
mod probe;
mod restart;
mod security;
mod regressions;
