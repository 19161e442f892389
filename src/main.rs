//! `siirto`: command line → configuration → tracing → run. The only place that uses `anyhow`.
//!
//! # Layout
//! - this file: carries out each [`cli::Command`] with the workspace's crates — `siirto-gateway`
//!   (`serve`, `migrate`, `convert`, `audit`), `siirto-devkit` (`demo`, `pki init`), `siirto-xsd`
//!   and `siirto-core` (`validate`). `docs/architecture.md` shows how the crates fit together.
//! - [`cli`]: the command-line grammar and its usage text.

mod cli;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use cli::{Command, SchemaSource};
use siirto_core::clock::{SystemClock, SystemRandom};
use siirto_gateway::config::Config;
use siirto_gateway::server::Shutdown;
use siirto_gateway::start::{self, Listeners};
use siirto_gateway::state::Gateway;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("siirto: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    init_tracing(matches!(command, Command::Demo { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("siirto: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("siirto: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIIRTO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow!("{e}"))
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config } => serve(&config).await,
        Command::Migrate { config } => {
            let config = load_config(&config)?;
            siirto_gateway::store::Store::open(&config.gateway.database_url)
                .await
                .context("migrating the database")?;
            println!("database is at the latest schema");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { keep } => Ok(siirto_devkit::demo::run(keep.as_deref())
            .await
            .map(|()| ExitCode::SUCCESS)?),
        Command::PkiInit {
            dir,
            api_port,
            admin_port,
        } => {
            let schemas = siirto_core::config::SchemaPaths::default();
            let pki = siirto_devkit::pki::init(&dir, api_port, admin_port, &schemas)
                .context("writing the development PKI")?;
            println!("{}", pki.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { schema, file } => validate(schema, &file),
        Command::Convert {
            config,
            from,
            to,
            scope,
            subject,
            file,
        } => Ok(siirto_gateway::tools::convert(
            &load_config(&config)?,
            from,
            to,
            scope.as_deref(),
            subject.as_deref(),
            &file,
        )?),
        Command::AuditVerify { config } => {
            Ok(siirto_gateway::tools::audit_verify(&load_config(&config)?).await?)
        }
        Command::AuditExport { config, since } => Ok(siirto_gateway::tools::audit_export(
            &load_config(&config)?,
            since.as_deref(),
        )
        .await?),
        Command::AuditVerifyProof {
            checkpoint,
            public_key,
            proof,
            old_checkpoint,
        } => Ok(siirto_gateway::tools::audit_verify_proof(
            &checkpoint,
            &public_key,
            &proof,
            old_checkpoint.as_deref(),
        )?),
    }
}

async fn serve(config_path: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let listeners = Listeners::bind(&config).await?;
    let gateway =
        Gateway::open(config, Arc::new(SystemClock), Arc::new(SystemRandom::new())).await?;
    tracing::info!(
        id = %gateway.config.gateway.id,
        listen = %gateway.config.gateway.listen,
        admin = %gateway.config.gateway.admin_listen,
        store = gateway.store.backend_name(),
        "siirto gateway started"
    );
    let (trigger, shutdown) = Shutdown::new();
    reload_on_sighup(gateway.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: no new connections; finishing in-flight work");
        trigger.trigger();
    });
    start::run(gateway, listeners, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP re-reads the issuers' JWKS files (key rotation); audited as `config.reload`.
fn reload_on_sighup(gateway: Arc<Gateway>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        // The outcome is logged and audited by the gateway.
                        let _ = gateway.reload_issuers("gateway", "sighup").await;
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "SIGHUP reload is not available"),
        }
    }
    #[cfg(not(unix))]
    let _ = gateway;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `siirto validate`: exit 0 valid, 1 invalid (errors on stdout), 2 unusable. The limits are
/// the configuration's `[limits.xml]` with `--config`, the documented defaults with `--schema`.
fn validate(source: SchemaSource, file: &Path) -> Result<ExitCode> {
    let (schema, config) = match source {
        SchemaSource::File(xsd) => (
            siirto_xsd::schema::Schema::load(&xsd).map_err(|e| anyhow!("{e}"))?,
            None,
        ),
        SchemaSource::Format { format, config } => {
            let config = load_config(&config)?;
            let schemas = siirto_core::pipeline::Schemas::load(&config.schemas, [format])?;
            let schema = schemas
                .get(format)
                .cloned()
                .ok_or_else(|| anyhow!("no schema for format {format}"))?;
            (schema, Some(config))
        }
    };
    let limits = siirto_core::pipeline::xml_limits(config.as_ref().map(|c| &c.limits));
    let mut out = std::io::stdout().lock();
    let status = siirto_xsd::schema::validate_file_cli(&schema, file, &limits, &mut out);
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(2)))
}
