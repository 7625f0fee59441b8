//! The long-running commands: `up`, `controller` and `agent`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cloison_agent::{bind_socket, follow_watch, serve_socket, ControlPlane, HostContext, Reconciler, WatchOptions};
use cloison_controller::Controller;
use cloison_dataplane::NetlinkDataplane;
use cloison_model::{validate_name, HostSpec};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::args::{served_socket, AgentArgs, ControllerArgs, GlobalArgs, HostArgs, UpArgs};
use crate::control::HttpControlPlane;
use crate::docker_driver::DockerArgs;
use crate::store::{open_store, StoreArgs};
use crate::underlay;

/// Runs a controller and an agent in this process until SIGINT or SIGTERM. What
/// another cloison may hold (the namespace, the agent socket, the API address) is
/// claimed before the store is opened, so a second `up` writes nothing.
pub(crate) async fn up(global: &GlobalArgs, args: UpArgs) -> anyhow::Result<()> {
    let cancel = shutdown_token();
    let socket = AgentSocket::claim(served_socket(args.socket.as_deref(), global))?;
    let listener = listen(args.listen).await?;
    let store = StoreArgs {
        data_dir: args.data_dir.clone(),
        store: None,
        etcd_prefix: cloison_store_etcd::DEFAULT_PREFIX.to_string(),
    };
    let bound = serve_controller(&store, listener, cancel.clone()).await?;
    let url = format!("http://{bound}");
    let control: Arc<dyn ControlPlane> = Arc::new(HttpControlPlane::new(&url)?);
    run_agent(control, &args.host, socket, (&args.docker, &url), cancel).await
}

/// Runs the controller until SIGINT or SIGTERM.
pub(crate) async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    let cancel = shutdown_token();
    let listener = listen(args.listen).await?;
    serve_controller(&args.store, listener, cancel.clone()).await?;
    cancel.cancelled().await;
    Ok(())
}

/// Runs this host's agent until SIGINT or SIGTERM.
pub(crate) async fn agent(global: &GlobalArgs, args: AgentArgs) -> anyhow::Result<()> {
    let cancel = shutdown_token();
    let socket = AgentSocket::claim(served_socket(args.socket.as_deref(), global))?;
    let control: Arc<dyn ControlPlane> = Arc::new(HttpControlPlane::new(&global.controller)?);
    run_agent(control, &args.host, socket, (&args.docker, &global.controller), cancel).await
}

/// This network namespace and the agent socket, claimed for one agent.
struct AgentSocket {
    _namespace: std::os::unix::net::UnixListener,
    listener: tokio::net::UnixListener,
    path: std::path::PathBuf,
}

impl AgentSocket {
    fn claim(path: &Path) -> anyhow::Result<Self> {
        let namespace = crate::preflight::claim_namespace()?;
        let listener = bind_socket(path).context("cannot serve the agent socket")?;
        Ok(AgentSocket { _namespace: namespace, listener, path: path.to_path_buf() })
    }
}

async fn listen(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}; is another controller running?"))
}

/// Opens the store and serves the API on `listener` in the background. Returns the
/// address bound.
async fn serve_controller(
    store_args: &StoreArgs,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    let store = open_store(store_args).await?;
    let controller = Arc::new(Controller::new(store));
    let bound = listener.local_addr()?;
    info!(listen = %bound, store = %store_args.describe(), "controller listening");
    tokio::spawn(async move {
        if let Err(e) = cloison_controller::serve(listener, controller, cancel).await {
            tracing::error!(error = %e, "controller stopped");
        }
    });
    Ok(bound)
}

async fn run_agent(
    control: Arc<dyn ControlPlane>,
    host: &HostArgs,
    socket: AgentSocket,
    (docker, controller_url): (&DockerArgs, &str),
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    crate::preflight::ensure_bridge_netfilter()?;
    let dataplane = NetlinkDataplane::new(host.run_dir.clone()).context("cannot open netlink")?;
    let ctx = host_context(host, &dataplane).await?;
    crate::preflight::check_host_name(&ctx.run_dir, &ctx.host)?;
    let spec = HostSpec {
        name: ctx.host.clone(),
        underlay_ip: ctx.underlay_ip,
        underlay_mtu: ctx.underlay_mtu,
        vxlan_port: ctx.vxlan_port,
    };
    info!(host.name = %ctx.host, underlay = %ctx.underlay_ip, underlay_mtu = ctx.underlay_mtu, "agent starting");
    let reconciler = Arc::new(Reconciler::new(Arc::new(dataplane), ctx));
    crate::docker_driver::spawn(docker, controller_url, control.clone(), reconciler.clone(), cancel.clone())?;
    let watch = tokio::spawn(follow_watch(
        control.clone(),
        reconciler.clone(),
        spec,
        WatchOptions { after_repair: Some(crate::memory::trim), ..WatchOptions::default() },
        cancel.clone(),
    ));
    let AgentSocket { _namespace, listener, path } = socket;
    let served = serve_socket(listener, &path, control, reconciler, cancel.clone()).await;
    cancel.cancel();
    let _ = watch.await;
    served.context("agent socket failed")
}

async fn host_context(host: &HostArgs, dataplane: &NetlinkDataplane) -> anyhow::Result<HostContext> {
    let name = match &host.host {
        Some(name) => name.clone(),
        None => system_host_name()?,
    };
    validate_name("host", &name)?;
    let underlay_ip = host.underlay_ip.unwrap_or_else(underlay::default_underlay_ip);
    let underlay_mtu = match host.underlay_mtu {
        Some(mtu) => mtu,
        None if underlay_ip.is_loopback() => 1500,
        None => underlay_mtu(dataplane, underlay_ip).await?,
    };
    Ok(HostContext {
        host: name,
        underlay_ip,
        underlay_mtu,
        vxlan_port: host.vxlan_port,
        run_dir: host.run_dir.clone(),
    })
}

/// Returns the MTU of the interface holding the underlay address, read over netlink
/// in the agent's own network namespace (`/sys` may show another one).
async fn underlay_mtu(dataplane: &NetlinkDataplane, ip: std::net::IpAddr) -> anyhow::Result<u32> {
    let found = dataplane
        .interface_of_address(ip)
        .await
        .context("cannot list the host's interfaces")?;
    match found {
        Some((_, mtu)) => Ok(mtu),
        None => anyhow::bail!(
            "no interface of this host holds the underlay address {ip}; pass --underlay-ip with an address of this host, or --underlay-mtu"
        ),
    }
}

fn system_host_name() -> anyhow::Result<String> {
    let raw = nix::unistd::gethostname().context("cannot read the host name")?;
    let name = raw.to_string_lossy().to_ascii_lowercase();
    let name = name.split('.').next().unwrap_or_default().to_string();
    validate_name("host", &name).with_context(|| "the system host name is not a valid cloison host name; pass --host")?;
    Ok(name)
}

/// Returns a token cancelled on SIGINT or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutting down");
        token.cancel();
    });
    cancel
}
