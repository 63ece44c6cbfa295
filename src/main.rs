//! `qswitch`: the daemon (`serve`) and its tools. Wiring only; the work is in the crates.

mod config;
mod forwarder;
mod inspect;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// qswitch: a userspace AF_XDP virtual switch with the Quantum / Neutron networking API.
///
/// Every option can also be set by its environment variable (shown in each command's --help).
#[derive(Debug, Parser)]
#[command(name = "qswitch", version, propagate_version = true)]
struct Cli {
    /// Log lines as text or as JSON objects (one per line); the level comes from RUST_LOG
    #[arg(
        long,
        global = true,
        value_enum,
        env = "QSWITCH_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the switch and its API (embedded SQLite store, or a shared PostgreSQL database)
    Serve(ServeArgs),
    /// Run a hypervisor host's data plane, following a shared PostgreSQL database (no API)
    Agent(AgentArgs),
    /// Print the SHA-256 digest of a token, as the tokens file stores it
    TokenDigest {
        /// The token; with -, the first line of stdin (kept out of the shell history and the
        /// process list)
        #[arg(allow_hyphen_values = true)]
        token: String,
    },
    /// A network's ports, their state and attachment, from a running daemon
    Ports {
        #[command(flatten)]
        target: inspect::Target,
        /// The network's id
        network: String,
    },
    /// A network's MAC table as the switch holds it (admin), from a running daemon
    Macs {
        #[command(flatten)]
        target: inspect::Target,
        /// The network's id
        network: String,
    },
    /// A port's live counters and non-zero drops by reason, from a running daemon
    Stats {
        #[command(flatten)]
        target: inspect::Target,
        /// The network's id
        network: String,
        /// The port's id
        port: String,
    },
    /// The connections a port's security groups track in the switch (admin), from a running
    /// daemon
    Connections {
        #[command(flatten)]
        target: inspect::Target,
        /// The network's id
        network: String,
        /// The port's id
        port: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// A boolean flag that its environment variable may also set (1/0, true/false, yes/no, on/off).
fn flag() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// API address
    #[arg(long, env = "QSWITCH_LISTEN", default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// The store: an SQLite file (created on first start), or a PostgreSQL database URL
    /// (`postgres://user@host:port/dbname`; `postgresql:///dbname?host=/run/postgresql` for a
    /// Unix socket; the `PG*` environment variables fill in what the URL leaves out)
    #[arg(long, env = "QSWITCH_DB", default_value = "qswitch.db")]
    db: String,
    /// TOML configuration (switch parameters, uplink, static networks and ports, [api], [metrics])
    #[arg(long, env = "QSWITCH_CONFIG")]
    config: Option<PathBuf>,
    /// Serve the API only; no interface is opened (ports stay DOWN)
    #[arg(long, env = "QSWITCH_NO_DATAPLANE", value_parser = flag())]
    no_dataplane: bool,
    /// noauth: every request may act on every tenant; token: X-Auth-Token required, looked up
    /// in --tokens
    #[arg(long, value_enum, env = "QSWITCH_AUTH", default_value = "noauth")]
    auth: AuthMode,
    /// The tokens file (TOML or JSON): SHA-256 digest -> tenant and roles
    #[arg(long, env = "QSWITCH_TOKENS")]
    tokens: Option<PathBuf>,
    /// Serve noauth on a non-loopback address (refused without this flag)
    #[arg(long, env = "QSWITCH_ALLOW_NOAUTH_REMOTE", value_parser = flag())]
    allow_noauth_remote: bool,
    /// Also serve GET /metrics (Prometheus) on this address, without authentication
    #[arg(long, env = "QSWITCH_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// This host's name, as ports are bound to it (`binding:host_id`) and as its agent reports
    /// (default: the machine's host name). When given, the data plane forwards only for ports
    /// bound to this host or to none
    #[arg(long, env = "QSWITCH_HOST")]
    host: Option<String>,
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// The shared store: a PostgreSQL database URL (as `serve --db`)
    #[arg(long, env = "QSWITCH_DB")]
    db: String,
    /// This host's name: the agent forwards for the ports bound to it (`binding:host_id`) or to
    /// none (default: the machine's host name)
    #[arg(long, env = "QSWITCH_HOST")]
    host: Option<String>,
    /// TOML configuration (switch parameters, uplink, static networks and ports)
    #[arg(long, env = "QSWITCH_CONFIG")]
    config: Option<PathBuf>,
    /// Which device a v2.0 port's `tap` name binds: `registered`, only a device the hypervisor
    /// side registered for the port's tenant (as `serve --auth token` does); `name`, any device
    /// of that name (as `serve` without authentication does)
    #[arg(long, env = "QSWITCH_TAP_BINDING", value_enum, default_value_t = TapBinding::Registered)]
    tap_binding: TapBinding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TapBinding {
    Registered,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMode {
    #[value(name = "noauth")]
    NoAuth,
    Token,
}

impl ServeArgs {
    /// The rules between options that clap's attributes do not express.
    fn check(self) -> Result<Self, String> {
        match (self.auth, &self.tokens) {
            (AuthMode::Token, None) => return Err("--auth token needs --tokens FILE".into()),
            (AuthMode::NoAuth, Some(_)) => {
                return Err("--tokens is for --auth token; add --auth token".into())
            }
            _ => {}
        }
        if self.auth == AuthMode::NoAuth
            && !self.listen.ip().is_loopback()
            && !self.allow_noauth_remote
        {
            return Err(format!(
                "--listen {}: refusing to serve without authentication there: anyone who \
                 reaches it could change every tenant's networks. Use --auth token --tokens \
                 FILE, listen on a loopback address, or pass --allow-noauth-remote",
                self.listen
            ));
        }
        Ok(self)
    }
}

/// The token of `token-digest`: the argument, or with `-` the first line of stdin.
fn read_token(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the token from stdin: {e}"))?;
    let t = line.trim_end_matches(['\n', '\r']);
    if t.is_empty() {
        return Err("no token on stdin".into());
    }
    Ok(t.to_owned())
}

/// The authentication mode of the API.
fn api_auth(args: &ServeArgs) -> Result<api::Auth, String> {
    match (&args.auth, &args.tokens) {
        (AuthMode::Token, Some(path)) => {
            let tokens = api::Tokens::load(path)?;
            if tokens.is_empty() {
                return Err(format!(
                    "{}: no token: every call would be refused",
                    path.display()
                ));
            }
            tracing::info!(tokens = tokens.len(), "token authentication");
            Ok(api::Auth::Token(Arc::new(tokens)))
        }
        _ => Ok(api::Auth::NoAuth),
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// mimalloc: the API's request path makes about a hundred short-lived allocations per call, and
/// glibc's malloc was a tenth of the server's CPU under a show load (docs/BENCHMARKS.md, "API").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => args.check().and_then(serve),
        Command::Agent(args) => agent(args),
        Command::TokenDigest { token } => {
            read_token(&token).map(|t| println!("{}", api::token_digest(&t)))
        }
        Command::Ports { target, network } => inspect::ports(&target, &network),
        Command::Macs { target, network } => inspect::macs(&target, &network),
        Command::Stats {
            target,
            network,
            port,
        } => inspect::stats(&target, &network, &port),
        Command::Connections {
            target,
            network,
            port,
        } => inspect::connections(&target, &network, &port),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "qswitch",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qswitch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reports this host's agent (its data plane runs here) at start and every
/// `REPORT_INTERVAL_SECS` after, as Neutron's agents report their state: `GET /v2.0/agents`
/// shows it alive while the reports come. On a shared store it also reports its ports' states
/// whenever they or the revision its data plane has applied change (looked at when a revision
/// that touched one of its ports is applied, and every `STATUS_POLL`): API servers take ports'
/// statuses from these reports, and a plug waits for its host's. Only ports whose device is on
/// this host are reported (an unbound port is taken
/// by every host, and opened where its device is). Between heartbeats a report carries what
/// changed; each heartbeat, and the first report after one that failed, carries everything, so
/// that a report lost on its way (they are written without waiting for the disk) is mended.
async fn report_agent(
    control: Arc<control::Control>,
    switch: Arc<dataplane::Switch>,
    host: String,
    ports_too: bool,
) {
    const STATUS_POLL: std::time::Duration = std::time::Duration::from_millis(10);
    const REVISION_REPORT: std::time::Duration = std::time::Duration::from_millis(50);
    let beat = std::time::Duration::from_secs(control::agent::REPORT_INTERVAL_SECS);
    let mut start = true;
    let mut whole = true;
    let mut last: Option<Reported> = None;
    let mut beaten = std::time::Instant::now();
    let mut reported_at = std::time::Instant::now();
    loop {
        let (c, s, h) = (control.clone(), switch.clone(), host.clone());
        let previous = last.clone();
        let due = start || beaten.elapsed() >= beat;
        let full = whole || due;
        let since = reported_at.elapsed();
        let reported = tokio::task::spawn_blocking(move || {
            let looked = std::time::Instant::now();
            let revision = c.applied_revision();
            let setting = c.last_port_revision();
            let mut ports = s.ports();
            let new_ports = previous
                .as_ref()
                .is_some_and(|p| !p.ids.iter().eq(ports.iter().map(|q| &q.id)));
            if ports_too && new_ports {
                // Ports came or went: report the new ones once they have opened.
                let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
                s.wait_ports_settled(&ids, std::time::Duration::from_millis(250));
                ports = s.ports();
            }
            let now = Reported {
                revision,
                ids: ports.iter().map(|p| p.id.clone()).collect(),
                reports: ports
                    .iter()
                    .filter(|p| p.present)
                    .map(port_report)
                    .collect(),
            };
            let states_changed = previous.as_ref().is_none_or(|p| p.reports != now.reports);
            let revision_changed = previous.as_ref().is_none_or(|p| p.revision != revision);
            // A port's state at once, and a revision that touched a port this host forwards for
            // or that is bound to it (a write waits for it: `last_port_revision`); any other new
            // revision at most every REVISION_REPORT (every host hears every revision).
            let set_here =
                revision >= setting && previous.as_ref().is_some_and(|p| p.revision < setting);
            let changed = ports_too
                && (states_changed || (revision_changed && (set_here || since >= REVISION_REPORT)));
            if !full && !changed {
                return Ok((revision, None));
            }
            let forwarding = ports
                .iter()
                .filter(|p| p.link == dataplane::LinkState::Up)
                .count();
            let configurations = serde_json::json!({
                "ports": ports.len(),
                "ports_forwarding": forwarding,
                "workers": s.workers(),
                "revision": revision,
            })
            .to_string();
            if !ports_too {
                c.report_agent(&h, &configurations, start)?;
            } else {
                // Everything it holds, or only what changed since the last report.
                let (diff, gone) = if full {
                    (now.reports.clone(), Vec::new())
                } else {
                    now.since(previous.as_ref())
                };
                let report = control::agent::HostReport {
                    revision,
                    changed: &diff,
                    gone: &gone,
                    full,
                };
                c.report_host(&h, &configurations, start, &report)?;
            }
            tracing::debug!(
                revision,
                full,
                took_us = looked.elapsed().as_micros() as u64,
                "reported this host's state"
            );
            Ok::<_, control::ControlError>((revision, Some(now)))
        })
        .await;
        // The revision this look saw: the wait below ends at the next one.
        let mut seen = control.applied_revision();
        match reported {
            Ok(Ok((rev, Some(now)))) => {
                seen = rev;
                if due {
                    beaten = std::time::Instant::now();
                }
                reported_at = std::time::Instant::now();
                start = false;
                whole = false;
                last = Some(now);
            }
            Ok(Ok((rev, None))) => seen = rev,
            Ok(Err(e)) => {
                // The store may have kept part of what it was told: the next report is whole.
                whole = true;
                tracing::warn!(%e, "the agent's report failed; trying again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => tracing::error!(%e, "the agent's report did not run"),
        }
        if ports_too {
            // Woken once its data plane has applied a revision that touched one of its ports (a
            // write waits for this report), and at least every STATUS_POLL for the ports'
            // states; other revisions wait for the next look.
            let c = control.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let end = std::time::Instant::now() + STATUS_POLL;
                let mut seen = seen;
                loop {
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    let rev = c.wait_applied(seen, left);
                    let setting = c.last_port_revision();
                    if rev == seen || left.is_zero() || (setting > seen && rev >= setting) {
                        break;
                    }
                    seen = rev;
                }
            })
            .await;
        } else {
            tokio::time::sleep(beat).await;
        }
    }
}

/// What a host last reported: the revision, every port the switch holds (by id, in order) and
/// the states of those whose device is here.
#[derive(Debug, Clone)]
struct Reported {
    revision: u64,
    ids: Vec<String>,
    reports: Vec<control::agent::PortReport>,
}

impl Reported {
    /// The reports that differ from `before`'s and the ports `before` reported that this does
    /// not (sorted, as the reports are).
    fn since(&self, before: Option<&Reported>) -> (Vec<control::agent::PortReport>, Vec<String>) {
        let was: std::collections::HashMap<&str, &control::agent::PortReport> = before
            .map(|b| b.reports.iter().map(|r| (r.port_id.as_str(), r)).collect())
            .unwrap_or_default();
        let held: std::collections::HashSet<&str> =
            self.reports.iter().map(|r| r.port_id.as_str()).collect();
        let diff = self
            .reports
            .iter()
            .filter(|r| was.get(r.port_id.as_str()) != Some(r))
            .cloned()
            .collect();
        let gone = before
            .map(|b| {
                b.reports
                    .iter()
                    .filter(|r| !held.contains(r.port_id.as_str()))
                    .map(|r| r.port_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        (diff, gone)
    }
}

/// What the API shows of a port the switch holds: ACTIVE while it forwards, ERROR when the
/// switch refuses it (with why), DOWN otherwise (no device here yet, or closed).
fn port_report(p: &dataplane::PortStatus) -> control::agent::PortReport {
    let (status, reason) = if p.is_forwarding() {
        ("ACTIVE", None)
    } else if p.refused {
        ("ERROR", p.error.clone())
    } else {
        ("DOWN", None)
    };
    control::agent::PortReport {
        port_id: p.id.clone(),
        status,
        reason,
    }
}

/// The machine's host name (Neutron's default `host`).
fn machine_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn load_config(path: Option<&PathBuf>) -> Result<config::FileConfig, String> {
    match path {
        Some(p) => config::FileConfig::load(p),
        None => Ok(config::FileConfig::default()),
    }
}

/// The control plane's options from the configuration file: physical networks, quotas, MTU.
fn control_options(
    file: &config::FileConfig,
    authorize_tap_binding: bool,
    host: Option<String>,
) -> Result<control::ControlOptions, String> {
    let api = file.api_config()?;
    Ok(control::ControlOptions {
        physnets: file.physnets()?,
        quotas: api.quotas,
        physnet_mtu: api.physnet_mtu,
        authorize_tap_binding,
        host,
    })
}

/// Starts the data plane with the configuration's switch parameters and static networks.
fn start_dataplane(
    file: &config::FileConfig,
) -> Result<(Arc<dyn control::forward::Forwarder>, Arc<dataplane::Switch>), String> {
    let switch = Arc::new(
        dataplane::Switch::start(file.options()?)
            .map_err(|e| format!("starting the data plane: {e}"))?,
    );
    let static_cfg = file.switch_config()?;
    switch
        .apply(static_cfg.clone())
        .map_err(|e| e.to_string())?;
    let f = forwarder::SwitchForwarder::new(switch.clone(), static_cfg, file.switch.mac_limit);
    Ok((Arc::new(f), switch))
}

/// Closes every port of the switch, if nothing else holds it.
fn stop_dataplane(switch: Arc<dataplane::Switch>) {
    // The control plane (and its forwarder) went with the runtime's tasks; if anything still
    // holds the switch, dropping our handle is enough: the last one closes every port.
    match Arc::try_unwrap(switch) {
        Ok(s) => s.shutdown(),
        Err(s) => drop(s),
    }
}

/// `qswitch agent`: a host's data plane on a shared store, with no API. It follows the store's
/// revision log (woken by PostgreSQL's NOTIFY) and reports itself every 30 s.
fn agent(args: AgentArgs) -> Result<(), String> {
    if !control::store::postgres::is_url(&args.db) {
        return Err(format!(
            "--db {}: an agent follows a shared database, a postgres:// URL",
            args.db
        ));
    }
    let file = load_config(args.config.as_ref())?;
    let host = args.host.unwrap_or_else(machine_host);
    let options = control_options(
        &file,
        args.tap_binding == TapBinding::Registered,
        Some(host.clone()),
    )?;
    let (forwarder, switch) = start_dataplane(&file)?;
    let control = control::Control::open_db(&args.db, forwarder, options)
        .map(Arc::new)
        .map_err(|e| format!("opening {}: {e}", control::store::describe(&args.db)))?;
    tracing::info!(
        "qswitch agent of host {host} (db {}, revision {})",
        control::store::describe(&args.db),
        control.applied_revision()
    );
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::spawn(report_agent(control, switch.clone(), host, true));
        shutdown_signal().await;
    });
    tracing::info!("shutting down: closing ports");
    drop(rt);
    stop_dataplane(switch);
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let file = load_config(args.config.as_ref())?;
    let api_cfg = file.api_config()?;
    let auth = api_auth(&args)?;
    // Bind the API first: a daemon that cannot serve its API must not take over interfaces.
    let std_listener = std::net::TcpListener::bind(args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let metrics_listener = args
        .metrics_listen
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("--metrics-listen {addr}: {e}"))
        })
        .transpose()?;
    let (forwarder, switch): (Arc<dyn control::forward::Forwarder>, _) = if !args.no_dataplane {
        let (f, switch) = start_dataplane(&file)?;
        (f, Some(switch))
    } else {
        (Arc::new(control::forward::NullForwarder), None)
    };
    // Opening the store rebuilds the desired state and applies it: forwarding comes back.
    let control = Arc::new(
        control::Control::open_db(
            &args.db,
            forwarder,
            // With authenticated callers, a v2.0 port takes its tap device only when the
            // hypervisor side registered that device for the port's tenant.
            control_options(
                &file,
                matches!(auth, api::Auth::Token(_)),
                args.host.clone(),
            )?,
        )
        .map_err(|e| format!("opening {}: {e}", control::store::describe(&args.db)))?,
    );
    for (net, physnet) in control.networks_on_unknown_physnets().unwrap_or_default() {
        tracing::warn!(
            "network {net} is on physical network {physnet}, which the configuration does not \
             name: it reaches no uplink (docs/OPERATIONS.md, \"Physical networks\")"
        );
    }
    let collectors: Vec<Box<dyn prometheus_client::collector::Collector>> = match &switch {
        Some(s) => vec![Box::new(metrics::DataplaneCollector(Arc::clone(s)))],
        None => Vec::new(),
    };
    let metrics = api::Metrics::new(control.clone(), file.metrics.options(), collectors);
    let agent_control = control.clone();
    let app = api::router(
        control,
        api::ApiOptions {
            metrics: Some(metrics.clone()),
            max_page_size: api_cfg.max_page_size,
            default_tenant: api_cfg.default_project,
            auth,
            rate_limits: api_cfg.rate_limits,
            agents: switch.is_some(),
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| format!("listening on {}: {e}", args.listen))?;
        tracing::info!(
            "qswitch API on http://{} (db {}, data plane {})",
            args.listen,
            control::store::describe(&args.db),
            if switch.is_some() { "on" } else { "off" }
        );
        if let Some(s) = switch.clone() {
            let host = args.host.clone().unwrap_or_else(machine_host);
            let shared = control::store::postgres::is_url(&args.db);
            tokio::spawn(report_agent(agent_control, s, host, shared));
        }
        if let Some(l) = metrics_listener {
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
            let at = args.metrics_listen.unwrap_or(args.listen);
            if at.ip().is_loopback() {
                tracing::info!("metrics on http://{at}/metrics");
            } else {
                tracing::warn!(
                    "metrics on http://{at}/metrics without authentication: whoever reaches it \
                     reads every port and network id of this host"
                );
            }
            let app = api::metrics_router(metrics);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    tracing::error!(%e, "the metrics listener stopped");
                }
            });
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    tracing::info!("shutting down: closing ports");
    drop(rt);
    if let Some(s) = switch {
        stop_dataplane(s);
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM, and logs which came (an unexpected stop says what stopped it).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received");
            return;
        }
    };
    let name = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!("{name} received");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        let argv = ["qswitch", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Serve(a) => a.check(),
            c => Err(format!("not serve: {c:?}")),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn noauth_is_refused_on_non_loopback_addresses_unless_asked_for() {
        assert!(parse(&["--listen", "127.0.0.1:9696"]).is_ok());
        assert!(parse(&["--listen", "[::1]:9696"]).is_ok());
        let e = parse(&["--listen", "0.0.0.0:9696"]).err().unwrap();
        assert!(e.contains("refusing") && e.contains("--listen"), "{e}");
        assert!(parse(&["--listen", "198.18.0.1:9696", "--auth", "noauth"]).is_err());
        assert!(parse(&["--listen", "0.0.0.0:9696", "--allow-noauth-remote"]).is_ok());
        let a = parse(&[
            "--listen",
            "0.0.0.0:9696",
            "--auth",
            "token",
            "--tokens",
            "t.toml",
        ])
        .unwrap();
        assert_eq!(a.auth, AuthMode::Token);
    }

    #[test]
    fn token_mode_and_the_tokens_file_go_together() {
        assert!(parse(&["--auth", "token"]).is_err());
        assert!(parse(&["--tokens", "t.toml"]).is_err());
        let e = parse(&["--auth", "magic"]).err().unwrap();
        assert!(e.contains("--auth"), "{e}");
        let e = parse(&["--listen", "nowhere"]).err().unwrap();
        assert!(e.contains("--listen"), "{e}");
    }
}
