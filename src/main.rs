//! `qswitch`: the daemon (`serve`) and its tools. Wiring only; the work is in the crates.

mod config;
mod forwarder;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
qswitch: a userspace AF_XDP virtual switch with the Quantum / Neutron networking API

USAGE:
    qswitch serve [--listen ADDR] [--db PATH] [--config FILE] [--no-dataplane]
    qswitch --help | --version

serve options:
    --listen ADDR     API address (default 127.0.0.1:9696)
    --db PATH         SQLite database, created on first start (default qswitch.db)
    --config FILE     TOML configuration (switch parameters, uplink, static networks and ports)
    --no-dataplane    serve the API only; no interface is opened (ports stay DOWN)
";

struct ServeArgs {
    listen: SocketAddr,
    db: PathBuf,
    config: Option<PathBuf>,
    dataplane: bool,
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<ServeArgs, String> {
    let mut a = ServeArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 9696)),
        db: PathBuf::from("qswitch.db"),
        config: None,
        dataplane: true,
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
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(a)
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
        control::Control::open(&args.db, forwarder)
            .map_err(|e| format!("opening {}: {e}", args.db.display()))?,
    );
    let app = api::router(control, api::ApiOptions::default());
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
