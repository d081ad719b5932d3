//! `updraft admin`: work on a server's data directly, with the server stopped or running
//! (SQLite waits for the server's writes; PostgreSQL takes them side by side).

use clap::Subcommand;

use crate::serve::DataArgs;

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Issue a new server administrator key (the old one stops working) and print it once.
    #[command(after_help = "Example:\n  updraft admin reset-key --data-dir /var/lib/updraft")]
    ResetKey(DataArgs),
}

pub async fn run(cmd: AdminCmd) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::ResetKey(data) => {
            let settings = data.settings()?;
            let app = updraft::backends::open(&settings, std::sync::Arc::new(updraft_app::SystemClock)).await?;
            let token = app.reset_server_admin_key(&updraft_app::Actor::System("admin reset-key")).await;
            app.shut_down().await;
            let token = token?;
            eprintln!(
                "a new server administrator key was issued; the old one no longer works. It is shown only this once:"
            );
            println!("{token}");
            Ok(())
        }
    }
}
