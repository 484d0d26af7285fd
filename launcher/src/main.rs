//! `plex-pg-launcher`: the command that replaces Plex's startup command.

fn main() {
    eprintln!("plex-pg-launcher: not built yet");
    std::process::exit(2);
}
