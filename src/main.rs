//! The `berth` binary: parse arguments, set up logging, run, and turn the
//! outcome into an exit code (0 success, 1 failure, 2 usage).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = berth::cli::parse();
    berth::cli::init_tracing(&cli);
    match berth::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
