//! Runs needtoknow's migrations on their own: `DATABASE_URL=… cargo run -p migration -- up`.
use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
