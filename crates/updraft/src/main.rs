//! The `updraft` command: `updraft serve` runs the server; every other
//! subcommand is a client of a running server (see `updraft-cli`).

mod admin;
mod agent;
mod process;
mod serve;
mod sim;
mod trust;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use updraft_cli::Conn;

#[derive(Parser)]
#[command(
    name = "updraft",
    version,
    about = "Over-the-air firmware updates for fleets of devices",
    after_help = "Start a server with `updraft serve`; every other command talks to one (--server or UPDRAFT_SERVER, \
                  the API key in --token or UPDRAFT_TOKEN). `updraft COMMAND --help` says more."
)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
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
    /// Work on a server's data directly (server stopped or not): recover a lost administrator key.
    #[command(subcommand)]
    Admin(admin::AdminCmd),
    /// The TUF repository of a product: its root keys, kept on this machine, and its online keys.
    #[command(subcommand)]
    Trust(trust::TrustCmd),
    /// Print a shell completion script, e.g. `updraft completions bash > /etc/bash_completion.d/updraft`.
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(updraft_cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let token_on_command_line = matches!(
        matches.subcommand().and_then(|(_, m)| m.value_source("token")),
        Some(clap::parser::ValueSource::CommandLine)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let conn = cli.conn;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args, conn.verbose).await,
            Command::Agent(args) => agent::run(args, &conn, token_on_command_line).await,
            Command::Sim(args) => sim::run(args, &conn).await,
            Command::Admin(cmd) => admin::run(cmd).await,
            Command::Trust(cmd) => trust::run(cmd, &conn).await,
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "updraft", &mut std::io::stdout());
                Ok(())
            }
            Command::Client(cmd) => updraft_cli::run(cmd, &conn).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command says what it does and every argument what it takes.
    #[test]
    fn every_subcommand_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: no about"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            walk(sub, "updraft", &mut missing);
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        cli.debug_assert();
    }

    #[test]
    fn global_options_go_anywhere_on_the_line() {
        for line in [
            &["updraft", "--json", "--server", "127.0.0.1:9", "job", "list"][..],
            &["updraft", "job", "--server", "127.0.0.1:9", "list", "--json"],
            &["updraft", "job", "list", "-v", "--json", "--server", "127.0.0.1:9"],
        ] {
            let cli = Cli::try_parse_from(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert!(cli.conn.json, "{line:?}");
            assert_eq!(cli.conn.base_url(), "http://127.0.0.1:9", "{line:?}");
        }
    }
}
