//! The API reference's Complete Example: an agent's memory for one conversation.
//!
//! Run with `cargo run --release --example agent_memory`. It keeps its data in
//! `./agent-memory` (removed first, so every run starts fresh).
#![expect(
    clippy::useless_conversion,
    reason = "written exactly as the API reference's Complete Example"
)]

use stratadb::prelude::*;

fn main() -> Result<()> {
    let _ = std::fs::remove_dir_all("./agent-memory");

    // Open database
    let db = StrataBuilder::new()
        .path("./agent-memory")
        .buffered()
        .open()?;

    // Create a conversation run with metadata
    let conversation = db.runs.create(Some(
        json!({
            "user": "alice",
            "topic": "weather"
        })
        .into(),
    ))?;

    // Store conversation context (KV)
    db.kv.set_in(&conversation, "user:name", "Alice")?;
    db.kv.set_in(&conversation, "user:location", "NYC")?;

    // Store user profile (JSON)
    db.json.set_in(
        &conversation,
        "user:profile",
        json!({
            "preferences": {
                "units": "metric",
                "theme": "dark"
            }
        }),
    )?;

    // Log agent actions (Events)
    db.events.append_in(
        &conversation,
        "trace",
        json!({
            "type": "user_message",
            "content": "What's the weather?"
        }),
    )?;
    db.events.append_in(
        &conversation,
        "trace",
        json!({
            "type": "tool_call",
            "tool": "weather_api"
        }),
    )?;

    // Track current state (State)
    db.state.set_in(&conversation, "agent:status", "thinking")?;

    // Store embeddings (Vectors)
    db.vectors
        .create_collection(&conversation, "memory", 4, DistanceMetric::Cosine)?;
    db.vectors.upsert(
        &conversation,
        "memory",
        "mem:1",
        &[0.1, 0.2, 0.3, 0.4],
        Some(Value::from("User asked about weather")),
    )?;

    // Read everything back
    let name = db.kv.get_in(&conversation, "user:name")?;
    println!("User: {:?}", name.map(|v| v.value));

    let events = db.events.read_in(&conversation, "trace", 10)?;
    println!("Events: {}", events.len());

    let similar = db
        .vectors
        .search(&conversation, "memory", &[0.1, 0.2, 0.3, 0.4], 5, None)?;
    println!("Similar memories: {}", similar.len());

    // Close the conversation
    db.runs.close(&conversation)?;

    // Flush and close
    db.flush()?;
    db.close()?;

    Ok(())
}
