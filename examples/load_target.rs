//! A loopback HTTP target for `tools/probe-load.sh`: `GET /health` (any query) answers
//! `200 ok`. It must never be the bottleneck of the measurement: one small static answer,
//! no logging, keep-alive, both cores available to it.
//!
//! ```sh
//! cargo run --release --example load_target -- 18080
//! ```
//!
//! It stops by itself after `MAX_SECONDS` (second argument, default 3600) so a forgotten one
//! does not run for ever.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().as_deref().unwrap_or("0").parse()?;
    let max_seconds: u64 = args.next().as_deref().unwrap_or("3600").parse()?;

    let app = Router::new().route("/health", get(|| async { "ok\n" }));
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::time::sleep(Duration::from_secs(max_seconds)).await;
        })
        .await?;
    Ok(())
}
