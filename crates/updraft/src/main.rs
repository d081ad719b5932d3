//! The `updraft` command: `updraft serve` runs the server; every other
//! subcommand is a client of a running server (see `updraft-cli`).

mod agent;
mod process;
mod serve;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "updraft", version, about = "Over-the-air firmware updates for fleets of devices")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (management API, device API, scheduler, metrics).
    Serve(serve::ServeArgs),
    /// Act as one device on the device (DDI) API: poll, download, verify, install, report.
    Agent(agent::AgentArgs),
    /// Simulate a fleet of devices against a server, for integration and load tests.
    Sim(sim::SimArgs),
    #[command(flatten)]
    Client(updraft_cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Client(cmd) => updraft_cli::run(cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
