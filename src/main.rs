//! `omni`: parse the command line, run the mode, map errors to exit codes.

fn main() -> std::process::ExitCode {
    omni::cli::main()
}
