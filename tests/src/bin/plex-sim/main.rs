//! `plex-sim`: a stand-in for Plex Media Server toward SQLite and processes,
//! for plex-pg's end-to-end tests and demo. See `docs/plex-sim.md`.
//!
//! One binary, several roles: the server (default), and the helpers the
//! server executes: `--scanner` (Plex Media Scanner) and `--child KIND`
//! (Tuner Service, Script Host, Crash Uploader, Transcoder); and
//! `plex-sim library …`, the generator of test libraries (`generator.rs`).

mod catalog;
mod check;
mod children;
mod cli;
mod faults;
mod generator;
mod generator_tables;
mod helpers;
mod journal;
mod library;
mod log;
mod pool;
mod progress;
mod rendezvous;
mod scanner;
mod server;
mod signals;
mod spawner;
mod sqlite;
mod stats;
mod summary;
mod workload;

use clap::Parser;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("library") {
        std::process::exit(generator::run(std::env::args().skip(1)));
    }
    let opts = cli::Options::parse();
    let code = if opts.scanner {
        scanner::run(&opts)
    } else if let Some(kind) = opts.child {
        helpers::run(kind, &opts)
    } else {
        server::run(&opts)
    };
    std::process::exit(code);
}
