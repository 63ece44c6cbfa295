//! `qswitch`: the daemon (`serve`) and its tools. Wiring only; the work is in the crates.

mod config;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
qswitch: a userspace AF_XDP virtual switch with the Quantum / Neutron networking API

USAGE:
    qswitch serve [--config FILE]
    qswitch --help | --version

serve options:
    --config FILE    TOML configuration (switch parameters, uplink, static networks and ports)
";

struct ServeArgs {
    config: Option<PathBuf>,
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<ServeArgs, String> {
    let mut a = ServeArgs { config: None };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--config" => a.config = Some(PathBuf::from(value("--config")?)),
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
    let switch =
        dataplane::Switch::start(opts).map_err(|e| format!("starting the data plane: {e}"))?;
    switch.apply(static_cfg).map_err(|e| e.to_string())?;
    tracing::info!("data plane running");
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(shutdown_signal());
    tracing::info!("shutting down: closing ports");
    switch.shutdown();
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
