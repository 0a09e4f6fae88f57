//! The API reference's Quick Start. Run with `cargo run --example quickstart`; it keeps
//! its data in `./my-db` (removed first).
use stratadb::prelude::*;

fn main() -> Result<()> {
    let _ = std::fs::remove_dir_all("./my-db");

    // Open a database
    let db = Strata::open("./my-db")?;

    // Key-value operations
    db.kv.set("user:name", "Alice")?;
    let name = db.kv.get("user:name")?;
    println!("user:name = {:?}", name.as_ref().and_then(|v| v.as_str()));

    // JSON documents - use json! macro
    db.json.set(
        "profile:1",
        json!({
            "name": "Alice",
            "age": 30
        }),
    )?;

    // Event streams
    db.events.append(
        "activity",
        json!({
            "action": "login"
        }),
    )?;

    // Graceful shutdown
    db.close()?;
    Ok(())
}
