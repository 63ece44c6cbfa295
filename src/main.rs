//! `qswitch`: the daemon (`serve`) and its tools. Wiring only; the work is in the crates.

mod config;
mod forwarder;
mod inspect;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
qswitch: a userspace AF_XDP virtual switch with the Quantum / Neutron networking API

USAGE:
    qswitch serve [--listen ADDR] [--db PATH] [--config FILE] [--no-dataplane]
                  [--auth noauth|token] [--tokens FILE] [--allow-noauth-remote]
    qswitch token-digest TOKEN|-
    qswitch ports --tenant T NETWORK_ID            [--api ADDR] [--token TOKEN]
    qswitch macs  --tenant T NETWORK_ID            [--api ADDR] [--token TOKEN]
    qswitch stats --tenant T NETWORK_ID PORT_ID    [--api ADDR] [--token TOKEN]
    qswitch --help | --version

serve options:
    --listen ADDR     API address (default 127.0.0.1:9696)
    --db PATH         SQLite database, created on first start (default qswitch.db)
    --config FILE     TOML configuration (switch parameters, uplink, static networks and ports)
    --no-dataplane    serve the API only; no interface is opened (ports stay DOWN)
    --auth MODE       noauth (default: every request may act on every tenant) or token
                      (X-Auth-Token required, looked up in --tokens)
    --tokens FILE     the tokens file (TOML or JSON): SHA-256 digest -> tenant and roles
    --allow-noauth-remote
                      serve noauth on a non-loopback address (refused without this flag)

ports, macs and stats ask a running daemon (--api, default 127.0.0.1:9696; the token may also
come from QSWITCH_TOKEN) for a network's ports, its MAC table (admin) or a port's live counters.

token-digest prints the SHA-256 digest of a token, as the tokens file stores it; with -, the
token is the first line of stdin (kept out of the shell history and the process list).
";

struct ServeArgs {
    listen: SocketAddr,
    db: PathBuf,
    config: Option<PathBuf>,
    dataplane: bool,
    auth: AuthMode,
    tokens: Option<PathBuf>,
    allow_noauth_remote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    NoAuth,
    Token,
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<ServeArgs, String> {
    let mut a = ServeArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 9696)),
        db: PathBuf::from("qswitch.db"),
        config: None,
        dataplane: true,
        auth: AuthMode::NoAuth,
        tokens: None,
        allow_noauth_remote: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                a.listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?}: expected IP:PORT"))?;
            }
            "--db" => a.db = PathBuf::from(value("--db")?),
            "--config" => a.config = Some(PathBuf::from(value("--config")?)),
            "--no-dataplane" => a.dataplane = false,
            "--auth" => {
                a.auth = match value("--auth")?.as_str() {
                    "noauth" => AuthMode::NoAuth,
                    "token" => AuthMode::Token,
                    m => return Err(format!("--auth {m:?}: expected noauth or token")),
                }
            }
            "--tokens" => a.tokens = Some(PathBuf::from(value("--tokens")?)),
            "--allow-noauth-remote" => a.allow_noauth_remote = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    match (a.auth, &a.tokens) {
        (AuthMode::Token, None) => return Err("--auth token needs --tokens FILE".into()),
        (AuthMode::NoAuth, Some(_)) => {
            return Err("--tokens is for --auth token; add --auth token".into())
        }
        _ => {}
    }
    if a.auth == AuthMode::NoAuth && !a.listen.ip().is_loopback() && !a.allow_noauth_remote {
        return Err(format!(
            "refusing to serve without authentication on {}: anyone who reaches it could \
             change every tenant's networks. Use --auth token --tokens FILE, listen on a \
             loopback address, or pass --allow-noauth-remote",
            a.listen
        ));
    }
    Ok(a)
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("serve") => parse_serve(args).and_then(serve),
        Some("token-digest") => match (args.next(), args.next()) {
            (Some(token), None) => {
                read_token(&token).map(|t| println!("{}", api::token_digest(&t)))
            }
            _ => {
                Err("token-digest takes one argument: the token, or - to read it from stdin".into())
            }
        },
        Some(cmd @ ("ports" | "macs" | "stats")) => {
            inspect::parse(args).and_then(|(t, rest)| match cmd {
                "ports" => inspect::ports(&t, &rest),
                "macs" => inspect::macs(&t, &rest),
                _ => inspect::stats(&t, &rest),
            })
        }
        Some("--version") => {
            println!("qswitch {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qswitch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(p) => config::FileConfig::load(p)?,
        None => config::FileConfig::default(),
    };
    let opts = file.options()?;
    let static_cfg = file.switch_config()?;
    let api_cfg = file.api_config()?;
    let auth = api_auth(&args)?;
    // Bind the API first: a daemon that cannot serve its API must not take over interfaces.
    let std_listener = std::net::TcpListener::bind(args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let (forwarder, switch): (Arc<dyn control::forward::Forwarder>, _) = if args.dataplane {
        let switch = Arc::new(
            dataplane::Switch::start(opts).map_err(|e| format!("starting the data plane: {e}"))?,
        );
        switch
            .apply(static_cfg.clone())
            .map_err(|e| e.to_string())?;
        let f = forwarder::SwitchForwarder::new(switch.clone(), static_cfg, file.switch.mac_limit);
        (Arc::new(f), Some(switch))
    } else {
        (Arc::new(control::forward::NullForwarder), None)
    };
    // Opening the store rebuilds the desired state and applies it: forwarding comes back.
    let control = Arc::new(
        control::Control::open_with(
            &args.db,
            forwarder,
            control::ControlOptions {
                quotas: api_cfg.quotas,
                // With authenticated callers, a v2.0 port takes its tap device only when the
                // hypervisor side registered that device for the port's tenant.
                authorize_tap_binding: matches!(auth, api::Auth::Token(_)),
                ..Default::default()
            },
        )
        .map_err(|e| format!("opening {}: {e}", args.db.display()))?,
    );
    let app = api::router(
        control,
        api::ApiOptions {
            max_page_size: api_cfg.max_page_size,
            default_tenant: api_cfg.default_project,
            auth,
            rate_limits: api_cfg.rate_limits,
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
            args.db.display(),
            if switch.is_some() { "on" } else { "off" }
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })?;
    tracing::info!("shutting down: closing ports");
    drop(rt);
    if let Some(s) = switch {
        // The control plane (and its forwarder) went with the runtime's tasks; if anything still
        // holds the switch, dropping our handle is enough: the last one closes every port.
        match Arc::try_unwrap(s) {
            Ok(s) => s.shutdown(),
            Err(s) => drop(s),
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        parse_serve(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn noauth_is_refused_on_non_loopback_addresses_unless_asked_for() {
        assert!(parse(&["--listen", "127.0.0.1:9696"]).is_ok());
        assert!(parse(&["--listen", "[::1]:9696"]).is_ok());
        let e = parse(&["--listen", "0.0.0.0:9696"]).err().unwrap();
        assert!(e.contains("refusing"), "{e}");
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
        assert!(parse(&["--auth", "magic"]).is_err());
    }
}
