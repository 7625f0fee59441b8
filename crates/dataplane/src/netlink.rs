//! Placeholder until the netlink implementation lands.
