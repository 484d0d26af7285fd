//! `plex-pg-launcher`: the command that replaces Plex's startup command.

use std::process::exit;

use clap::Parser;
use plex_pg_config::settings::LogLevel;
use plex_pg_launcher::cli::{Cli, Command};
use plex_pg_launcher::{check, guard, import, supervisor, switch};

fn main() {
    let cli = Cli::parse();
    let (settings, config_errors) = cli.options.settings_all();
    let checking = matches!(cli.command, Some(Command::Check));
    if !config_errors.is_empty() && !checking {
        for e in &config_errors {
            eprintln!("plex-pg-launcher: {e}");
        }
        eprintln!("plex-pg-launcher: nothing was started; fix the configuration (plex-pg-launcher check shows every problem)");
        exit(2);
    }
    if cli.command.is_none() {
        // `check` reports an untrusted file as FAIL itself; a run refuses it.
        if let Err(e) = plex_pg_launcher::trust::check_config(&settings) {
            eprintln!("plex-pg-launcher: refusing the configuration file: {e}");
            eprintln!("plex-pg-launcher: nothing was started (the file decides the shim, the alert command and the user Plex runs as)");
            exit(2);
        }
    }
    init_logging(&settings);
    if !checking {
        // `check` lists these itself.
        for note in &settings.notes {
            tracing::info!("{note}");
        }
        for note in plex_pg_config::compat::env_notes(
            std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()),
        ) {
            tracing::warn!("{note}");
        }
    }
    match cli.command {
        Some(Command::Check) => exit(check::run(&settings, &config_errors)),
        Some(Command::Import(args)) => exit(import::exec(&cli.options, &args)),
        Some(Command::Export(args)) => exit(import::exec_export(&cli.options, &args)),
        Some(Command::Status) => match &settings.launcher.metrics_listen {
            Some(listen) => match plex_pg_launcher::metrics::status(listen) {
                Ok(text) => {
                    print!("{text}");
                    exit(0)
                }
                Err(e) => {
                    eprintln!("plex-pg-launcher: {e}");
                    exit(1)
                }
            },
            None => {
                eprintln!("plex-pg-launcher: status reads the running launcher's metrics: set launcher.metrics_listen (PLEX_PG_METRICS_LISTEN), e.g. 127.0.0.1:9187, for it and for Plex's launcher");
                exit(2)
            }
        },
        Some(Command::Enable(args)) => exit(switch::enable(&settings, &args)),
        Some(Command::Disable(args)) => exit(switch::disable(&settings, &args)),
        None => {
            if cli.program.is_empty() {
                eprintln!("plex-pg-launcher: no command to start; usage: plex-pg-launcher [OPTIONS] -- COMMAND [ARGS...]");
                exit(2);
            }
            if let Some(why) = guard::refusal(&settings) {
                eprintln!("plex-pg-launcher: {why}");
                exit(2);
            }
            if let Some(why) = check::pooler_refusal(&settings) {
                eprintln!("plex-pg-launcher: {why}");
                exit(2);
            }
            exit(supervisor::run(settings, cli.program));
        }
    }
}

fn init_logging(settings: &plex_pg_config::Settings) {
    let level = match settings.log.level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    // Opened as root, maybe in Plex's user's directory: no planted link is followed.
    let service_uid = settings
        .launcher
        .user
        .as_deref()
        .and_then(|u| plex_pg_launcher::privileges::lookup(u).ok())
        .map(|t| t.uid.as_raw());
    let file = settings.log.file.as_ref().and_then(|path| {
        plex_pg_launcher::log_files::Rotating::open(
            path,
            service_uid,
            settings.log.max_bytes,
            settings.log.keep,
        )
        .map_err(|e| {
            eprintln!(
                "plex-pg-launcher: cannot open log.file {}: {e}; logging to standard error",
                path.display()
            )
        })
        .ok()
    });
    match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}
