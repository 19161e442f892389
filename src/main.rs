//! `siirto`: command line → configuration → tracing → run. The only place that uses `anyhow`.
//!
//! # Layout
//! - this file: carries out each [`cli::Command`] with the workspace's crates — `siirto-gateway`
//!   (`serve`, `migrate`, `convert`, `audit`), `siirto-devkit` (`demo`, `pki init`, `dev sign`,
//!   `dev peers`), `siirto-xsd` and `siirto-core` (`validate`); `completions` and `man` print
//!   what clap generates from the grammar. `docs/architecture.md` shows how the crates fit
//!   together.
//! - [`cli`]: the command-line grammar (clap), its help texts and the version line.

mod cli;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use cli::{Audit, Command, Dev, Pki, SchemaSource};
use siirto_core::clock::{SystemClock, SystemRandom};
use siirto_core::formats::Format;
use siirto_gateway::config::Config;
use siirto_gateway::metrics::BuildInfo;
use siirto_gateway::server::Shutdown;
use siirto_gateway::start::{self, Listeners};
use siirto_gateway::state::Gateway;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli) => cli.command,
        Err(e) => {
            // Help and version on stdout (exit 0); a refused command line on stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Err(e) = init_tracing(matches!(command, Command::Demo { .. })) {
        eprintln!("siirto: {e}");
        return ExitCode::from(2);
    }
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
            eprintln!("siirto: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes as one line, each cause once. Errors here mostly show their source
/// in their own message already (`{key}: cannot listen on {addr}: {source}`); a cause whose
/// text the line already holds is not repeated. (A configuration error keeps one line per
/// problem.)
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// Logs to stderr: `SIIRTO_LOG` is the filter (`info`, `warn` for the demo), and
/// `SIIRTO_LOG_FORMAT` the format — `text` (the default; coloured on a terminal) or `json` (one
/// JSON object a line: `timestamp`, `level`, `message`, the event's fields, `target`, and
/// `spans`, the spans it was logged in with their fields: `request_id`, `transfer_id`).
fn init_tracing(quiet: bool) -> Result<(), String> {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIIRTO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("SIIRTO_LOG_FORMAT").unwrap_or_default();
    // `try_init` fails only when a subscriber is already set, which nothing here does.
    let _ = match format.as_str() {
        "" | "text" => logs
            // Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .try_init(),
        "json" => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        other => {
            return Err(format!(
                "SIIRTO_LOG_FORMAT must be `text` or `json`, not `{other}`"
            ));
        }
    };
    Ok(())
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow!("{e}"))
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(cli::ConfigFile { config }) => serve(&config).await,
        Command::Migrate(cli::ConfigFile { config }) => {
            let config = load_config(&config)?;
            siirto_gateway::store::Store::open(&config.gateway.database_url)
                .await
                .context("migrating the database")?;
            println!("database is at the latest schema");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { keep, page } => {
            Ok(siirto_devkit::demo::run(keep.as_deref(), page.as_deref())
                .await
                .map(|()| ExitCode::SUCCESS)?)
        }
        Command::Pki(Pki::Init(init)) => {
            let ports = if init.free_ports {
                siirto_devkit::pki::Ports::Free
            } else {
                siirto_devkit::pki::Ports::Given {
                    api: init.api_port,
                    admin: init.admin_port,
                }
            };
            let schemas = siirto_core::config::SchemaPaths::default();
            let pki = siirto_devkit::pki::init(&init.dir, ports, &schemas)
                .context("writing the development PKI")?;
            println!("{}", pki.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(v) => {
            let schema = v.source().ok_or_else(|| {
                anyhow!("validate needs --schema XSD or --format F --config FILE")
            })?;
            validate(schema, &v.file)
        }
        Command::Convert(cli::Convert {
            config,
            from,
            to,
            scope,
            subject,
            file,
        }) => Ok(siirto_gateway::tools::convert(
            &load_config(&config)?,
            from,
            to,
            scope.as_deref(),
            subject.as_deref(),
            &file,
        )?),
        Command::Sign(cli::Sign { config, file }) => {
            Ok(siirto_gateway::tools::sign(&load_config(&config)?, &file)?)
        }
        Command::VerifySignature(cli::VerifySignature {
            cert,
            allow_sha1,
            file,
        }) => Ok(siirto_gateway::tools::verify_signature(
            &cert, allow_sha1, &file,
        )?),
        Command::Retention {
            config: cli::ConfigFile { config },
            dry_run,
        } => Ok(siirto_gateway::tools::retention(&load_config(&config)?, dry_run).await?),
        Command::Transfers(cli::Transfers::List {
            config: cli::ConfigFile { config },
            subject,
            reason,
            status,
            src,
            dst,
            since,
            until,
            format,
        }) => {
            let config = load_config(&config)?;
            let pairs: Vec<(String, String)> = [
                ("status", status),
                ("src", src),
                ("dst", dst),
                ("since", since),
                ("until", until),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            let filter = siirto_gateway::listing::parse_filter(&config.directory, &pairs)
                .map_err(|m| siirto_gateway::tools::ToolError::Usage(format!("--{m}")))?;
            let subject = match subject.as_deref() {
                Some("-") => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map_err(|e| {
                        siirto_gateway::tools::ToolError::Usage(format!(
                            "--subject -: standard input cannot be read: {e}"
                        ))
                    })?;
                    Some(line.trim().to_owned())
                }
                other => other.map(str::to_owned),
            };
            let format = match format {
                cli::ListFormat::Text => siirto_gateway::tools::ListFormat::Text,
                cli::ListFormat::Csv => siirto_gateway::tools::ListFormat::Csv,
                cli::ListFormat::Jsonl => siirto_gateway::tools::ListFormat::Jsonl,
            };
            Ok(siirto_gateway::tools::transfers_list(
                &config,
                filter,
                subject.as_deref(),
                reason.as_deref(),
                format,
            )
            .await?)
        }
        Command::Transfers(cli::Transfers::Show {
            config: cli::ConfigFile { config },
            id,
        }) => Ok(siirto_gateway::tools::transfers_show(&load_config(&config)?, &id).await?),
        Command::Transfers(cli::Transfers::Retry {
            config: cli::ConfigFile { config },
            reason,
            src,
            dst,
            limit,
        }) => {
            let config = load_config(&config)?;
            let filter = siirto_gateway::retry::RetryFilter::parse(
                &config.directory,
                Some(&reason),
                src,
                dst,
                limit.as_deref(),
            )
            .map_err(siirto_gateway::tools::ToolError::Usage)?;
            Ok(siirto_gateway::tools::transfers_retry(&config, &filter).await?)
        }
        Command::Audit(Audit::Verify(cli::ConfigFile { config })) => {
            Ok(siirto_gateway::tools::audit_verify(&load_config(&config)?).await?)
        }
        Command::Audit(Audit::Export {
            config: cli::ConfigFile { config },
            since,
        }) => Ok(
            siirto_gateway::tools::audit_export(&load_config(&config)?, since.as_deref()).await?,
        ),
        Command::Audit(Audit::VerifyProof {
            checkpoint,
            public_key,
            proof,
            old_checkpoint,
            witness_key,
            quorum,
        }) => Ok(siirto_gateway::tools::audit_verify_proof(
            &checkpoint,
            &public_key,
            &proof,
            old_checkpoint.as_deref(),
            &siirto_gateway::tools::WitnessQuorum {
                keys: witness_key,
                quorum,
            },
        )?),
        Command::Attestation(cli::Attestation::Verify { file, public_key }) => Ok(
            siirto_gateway::tools::attestation_verify(&file, &public_key)?,
        ),
        Command::Dev(Dev::Sign(sign)) => {
            println!("{}", siirto_devkit::dev::sign(&sign.request())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(Dev::Peers {
            config: cli::ConfigFile { config },
            records,
        }) => dev_peers(siirto_devkit::dev::PeersRequest { config, records }).await,
        Command::Completions { shell } => {
            write_stdout(&cli::completions(shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: None } => {
            write_stdout(&cli::man_page()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: Some(dir) } => {
            cli::write_man_pages(&dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            println!("man pages written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// `siirto dev peers`: serves until SIGTERM or Ctrl-C, then says what the destinations got.
async fn dev_peers(request: siirto_devkit::dev::PeersRequest) -> Result<ExitCode> {
    let peers = siirto_devkit::dev::start_peers(&request).await?;
    println!(
        "development peers for {} (test data only, never real records)",
        request.config.display()
    );
    print!("{}", peers.describe());
    println!("ready; Ctrl-C or SIGTERM stops");
    write_stdout(b"")?;
    wait_for_signal().await;
    print!("{}", peers.stop());
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn serve(config_path: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let listeners = Listeners::bind(&config).await?;
    let build = BuildInfo::new(siirto_buildinfo::VERSION, siirto_buildinfo::GIT_REVISION);
    let gateway = Gateway::open(
        config,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
        build,
    )
    .await?;
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

/// `siirto validate --format koski`: KOSKI's JSON has no schema; it is valid when it reads into
/// the typed model within the configuration's `[limits.json]`. Exit 0 valid, 1 invalid (the
/// code, line and column on stdout), 2 unreadable.
fn validate_koski(config: &Config, file: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let limits = siirto_core::pipeline::json_limits(Some(&config.limits));
    match siirto_core::formats::koski::parse(&bytes, &limits) {
        Ok((oppija, report)) => {
            println!(
                "{}: valid ({} study rights; {} fields not carried, {} not understood)",
                file.display(),
                oppija.opiskeluoikeudet.len(),
                report.not_carried.values().sum::<usize>(),
                report.not_understood.values().sum::<usize>()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: invalid ({}): {e}", file.display(), e.code());
            Ok(ExitCode::from(1))
        }
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
        SchemaSource::Format {
            format: Format::Koski,
            config,
        } => return validate_koski(&load_config(&config)?, file),
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
