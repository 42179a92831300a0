//! `ferry`: copy container images between registries, exactly; plan, sync and verify
//! whole registries from the same configuration the Lambda functions use.

mod args;
mod config_cmd;
mod copy_cmd;
mod dead_letters_cmd;
mod output;
mod plan_cmd;
mod progress;
mod setup;
mod status_cmd;
mod sync_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            args::Command::Copy(a) => copy_cmd::run(a).await,
            args::Command::Plan(a) => plan_cmd::run(a).await,
            args::Command::Sync(a) => sync_cmd::run(a).await,
            args::Command::Verify(a) => verify_cmd::run(a).await,
            args::Command::DeadLetters(a) => dead_letters_cmd::run(a).await,
            args::Command::Status(a) => status_cmd::run(a).await,
            args::Command::Config(c) => config_cmd::run(c),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ferry=info",
        2 => "debug,hyper=info,h2=info,rustls=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
