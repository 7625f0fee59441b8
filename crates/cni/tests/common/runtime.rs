//! A CNI runtime for tests, following the runtime part of the CNI specification
//! 1.1.0 (section "Execution of Network Configurations"), because no packaged
//! `cnitool` exists on Debian 12:
//! - ADD runs the plugins of a list in order, giving each the list's `name` and
//!   `cniVersion` and, from the second on, the previous plugin's result as
//!   `prevResult`; the last result is cached per (network, container, interface).
//! - CHECK runs them in order with the cached result as `prevResult`.
//! - DEL runs them in reverse order with the cached result when there is one, and
//!   drops the cache entry once every plugin succeeded.
//! - GC deletes cached attachments missing from the valid list, then sends GC with
//!   `cni.dev/valid-attachments` to the plugins, as libcni does.
//! - `runtimeConfig` carries only the capabilities a plugin declares.
//!
//! Plugins run with the `CNI_*` variables and stdin config, inside the namespace
//! that plays the host (entered with `setns` before `exec`), never the machine's own.

// Errors are rare in tests and read whole, so their size does not matter here.
#![allow(clippy::result_large_err)]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

/// One container interface, as the runtime knows it.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS`, as `K=V;K=V`.
    pub args: String,
    /// Capability values, of which each plugin receives those it declares.
    pub capabilities: Map<String, Value>,
}

impl Attachment {
    pub fn new(container_id: &str, netns: &str, ifname: &str) -> Self {
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_string(),
            ifname: ifname.to_string(),
            args: String::new(),
            capabilities: Map::new(),
        }
    }
}

/// A plugin's error object, with the plugin that returned it.
#[derive(Debug, Clone)]
pub struct PluginError {
    pub plugin: String,
    pub code: u64,
    pub msg: String,
    pub details: String,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed with code {}: {}: {} (stderr: {})", self.plugin, self.code, self.msg, self.details, self.stderr.trim())
    }
}

#[derive(Debug)]
pub struct Runtime {
    plugin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    host_netns: File,
}

impl Runtime {
    /// Creates a runtime whose plugins run in the namespace at `host_netns`.
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf, host_netns: &str) -> Self {
        let host_netns = File::open(host_netns).unwrap_or_else(|e| panic!("cannot open {host_netns}: {e}"));
        std::fs::create_dir_all(&cache_dir).expect("cannot create the result cache");
        Runtime { plugin_dirs, cache_dir, host_netns }
    }

    pub fn add(&self, list: &Value, at: &Attachment) -> Result<Value, PluginError> {
        let mut previous: Option<Value> = None;
        for plugin in &plugins(list) {
            let config = self.plugin_config(list, plugin, at, previous.as_ref(), None);
            previous = self.exec("ADD", &config, at)?;
        }
        let result = previous.unwrap_or(Value::Null);
        let cached = json!({ "kind": "cniCacheV1", "containerId": at.container_id, "ifName": at.ifname,
                             "networkName": list["name"], "result": result });
        std::fs::write(self.cache_path(list, at), cached.to_string()).expect("cannot write the result cache");
        Ok(result)
    }

    pub fn check(&self, list: &Value, at: &Attachment) -> Result<(), PluginError> {
        let cached = self.cached(list, at).expect("CHECK needs a cached ADD result");
        for plugin in &plugins(list) {
            let config = self.plugin_config(list, plugin, at, Some(&cached), None);
            self.exec("CHECK", &config, at)?;
        }
        Ok(())
    }

    pub fn del(&self, list: &Value, at: &Attachment) -> Result<(), PluginError> {
        let cached = self.cached(list, at);
        for plugin in plugins(list).iter().rev() {
            let config = self.plugin_config(list, plugin, at, cached.as_ref(), None);
            self.exec("DEL", &config, at)?;
        }
        let _ = std::fs::remove_file(self.cache_path(list, at));
        Ok(())
    }

    /// Deletes cached attachments of `list` that are not in `valid`, then sends GC.
    pub fn gc(&self, list: &Value, valid: &[(String, String)]) -> Result<(), PluginError> {
        for (container_id, ifname) in self.cached_attachments(list) {
            if !valid.contains(&(container_id.clone(), ifname.clone())) {
                self.del(list, &Attachment::new(&container_id, "", &ifname))?;
            }
        }
        let entries: Vec<Value> = valid.iter().map(|(c, i)| json!({ "containerID": c, "ifname": i })).collect();
        let nobody = Attachment::new("", "", "");
        for plugin in &plugins(list) {
            let config = self.plugin_config(list, plugin, &nobody, None, Some(&entries));
            self.exec("GC", &config, &nobody)?;
        }
        Ok(())
    }

    pub fn status(&self, list: &Value) -> Result<(), PluginError> {
        let nobody = Attachment::new("", "", "");
        for plugin in &plugins(list) {
            self.exec("STATUS", &self.plugin_config(list, plugin, &nobody, None, None), &nobody)?;
        }
        Ok(())
    }

    pub fn cache_path(&self, list: &Value, at: &Attachment) -> PathBuf {
        let name = list["name"].as_str().unwrap_or_default();
        self.cache_dir.join(format!("{name}-{}-{}", at.container_id, at.ifname))
    }

    fn cached(&self, list: &Value, at: &Attachment) -> Option<Value> {
        let text = std::fs::read_to_string(self.cache_path(list, at)).ok()?;
        let entry: Value = serde_json::from_str(&text).ok()?;
        Some(entry["result"].clone())
    }

    fn cached_attachments(&self, list: &Value) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else { return Vec::new() };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
            .filter(|entry| entry["networkName"] == list["name"])
            .filter_map(|entry| Some((entry["containerId"].as_str()?.to_string(), entry["ifName"].as_str()?.to_string())))
            .collect()
    }

    /// Builds one plugin's stdin: its own object, the list's name and version,
    /// the capabilities it declares, and `prevResult` when given.
    fn plugin_config(&self, list: &Value, plugin: &Value, at: &Attachment, prev: Option<&Value>, valid: Option<&[Value]>) -> Value {
        let mut config = plugin.as_object().cloned().unwrap_or_default();
        config.insert("name".into(), list["name"].clone());
        config.insert("cniVersion".into(), list["cniVersion"].clone());
        let declared = plugin["capabilities"].as_object().cloned().unwrap_or_default();
        let runtime_config: Map<String, Value> = at
            .capabilities
            .iter()
            .filter(|(name, _)| declared.get(*name).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !runtime_config.is_empty() {
            config.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        if let Some(prev) = prev {
            config.insert("prevResult".into(), prev.clone());
        }
        if let Some(valid) = valid {
            config.insert("cni.dev/valid-attachments".into(), Value::Array(valid.to_vec()));
        }
        Value::Object(config)
    }

    /// Runs one plugin and returns its parsed stdout (None when empty).
    fn exec(&self, command: &str, config: &Value, at: &Attachment) -> Result<Option<Value>, PluginError> {
        let plugin_type = config["type"].as_str().unwrap_or_default().to_string();
        let binary = self.find(&plugin_type);
        let search_path = std::env::join_paths(&self.plugin_dirs).expect("plugin directories form a PATH");
        let mut child = Command::new(&binary);
        child
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &at.container_id)
            .env("CNI_NETNS", &at.netns)
            .env("CNI_IFNAME", &at.ifname)
            .env("CNI_ARGS", &at.args)
            .env("CNI_PATH", search_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let netns = self.host_netns.try_clone().expect("cannot duplicate the namespace descriptor");
        // SAFETY: between fork and exec the closure only calls setns(2), which is
        // async-signal-safe, on a descriptor opened before the fork.
        unsafe {
            child.pre_exec(move || {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
        let mut process = child.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        if let Some(mut stdin) = process.stdin.take() {
            stdin.write_all(config.to_string().as_bytes()).expect("cannot write the plugin's stdin");
        }
        let output = process.wait_with_output().expect("cannot wait for the plugin");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let parsed: Option<Value> = serde_json::from_str(stdout.trim()).ok();
        if output.status.success() {
            return Ok(parsed);
        }
        let error = parsed.unwrap_or(Value::Null);
        Err(PluginError {
            plugin: plugin_type,
            code: error["code"].as_u64().unwrap_or(0),
            msg: error["msg"].as_str().unwrap_or_default().to_string(),
            details: error["details"].as_str().unwrap_or_default().to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn find(&self, plugin_type: &str) -> PathBuf {
        self.plugin_dirs
            .iter()
            .map(|dir| dir.join(plugin_type))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("plugin {plugin_type:?} not found in {:?}", self.plugin_dirs))
    }
}

fn plugins(list: &Value) -> Vec<Value> {
    list["plugins"].as_array().cloned().unwrap_or_default()
}

/// Returns a path under `dir` for a runtime's result cache.
pub fn cache_dir(dir: &Path) -> PathBuf {
    dir.join("cache")
}
