//! The `allegro-bridge` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    let cli = allegro_bridge::cli::Cli::parse();
    match allegro_bridge::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("allegro-bridge: {e:#}");
            std::process::exit(2);
        }
    }
}
