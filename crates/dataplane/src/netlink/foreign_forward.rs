//! Other tables' forward chains whose policy is drop, such as the one that
//! `iptables -P FORWARD DROP` (set by Docker) creates through iptables-nft.
//!
//! Every base chain at a hook sees each packet, and a drop in any of them is final,
//! so an accept in cloison's own table cannot let a packet through such a chain.
//! Bridged endpoint traffic reaches the forward hook through `br_netfilter`, and
//! publications and egress are routed through the transit links, so without help
//! all of them die there. Like Docker for its bridges, the agent inserts accepts for
//! its own interfaces at the top of those chains. Its own forward chain still
//! filters the same packets by the security groups.
//!
//! NOTE: chains of iptables-legacy (x_tables) are not visible to `nft` and are left
//! alone.

use std::path::{Path, PathBuf};

use super::nftables::run_nft;
use crate::DataplaneError;

/// Comment on the rules cloison inserts, by which it finds them again.
const COMMENT: &str = "cloison: forward its own interfaces";

/// Interfaces of cloison: endpoint bridges (`clb…`) and transit links (`clh…`).
const MATCHES: [&str; 4] = ["iifname \"clb*\"", "oifname \"clb*\"", "iifname \"clh*\"", "oifname \"clh*\""];

/// Inserts cloison's accepts into every forward chain of another table whose policy
/// is drop and that lacks them, in the namespace at `namespace` or the caller's.
/// Returns the chains changed, as `family table chain`.
pub(super) async fn open(namespace: Option<&Path>) -> Result<Vec<String>, DataplaneError> {
    let target = namespace.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || open_blocking(target))
        .await
        .map_err(|e| DataplaneError::Io { op: "run nft".into(), source: std::io::Error::other(e) })?
}

fn open_blocking(namespace: Option<PathBuf>) -> Result<Vec<String>, DataplaneError> {
    let namespace = namespace.as_deref();
    let listing = run_nft(namespace, &["list", "chains"], None)?;
    let mut changed = Vec::new();
    for (family, table, chain) in dropping_forward_chains(&listing) {
        let rules = run_nft(namespace, &["list", "chain", &family, &table, &chain], None)?;
        if rules.contains(COMMENT) {
            continue;
        }
        let script: String = MATCHES
            .iter()
            .map(|matches| format!("insert rule {family} {table} {chain} {matches} accept comment \"{COMMENT}\"\n"))
            .collect();
        run_nft(namespace, &["-f", "-"], Some(&script))?;
        changed.push(format!("{family} {table} {chain}"));
    }
    Ok(changed)
}

/// Returns (family, table, chain) of every base chain at the forward hook with
/// policy drop outside cloison's tables, from the output of `nft list chains`.
fn dropping_forward_chains(listing: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut table: Option<(String, String)> = None;
    let mut chain: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", family, name, "{"] => table = Some((family.to_string(), name.to_string())),
            ["chain", name, "{"] => chain = Some(name.to_string()),
            _ if line.contains("hook forward") && line.contains("policy drop") => {
                let (Some((family, name)), Some(chain)) = (&table, &chain) else { continue };
                let ip_family = matches!(family.as_str(), "ip" | "ip6" | "inet");
                if ip_family && name != "cloison" {
                    found.push((family.clone(), name.clone(), chain.clone()));
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_foreign_dropping_forward_chain() {
        let listing = "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\ntable inet cloison {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\ntable inet other {\n\tchain fw {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";
        let found = dropping_forward_chains(listing);
        assert_eq!(found, vec![("ip".to_string(), "filter".to_string(), "FORWARD".to_string())]);
    }
}
