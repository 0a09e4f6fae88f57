//! Single-key commits through the facade, one `db.kv.put` per call, the way
//! `benches/compare` times them (24-byte keys, 100-byte values, random keys):
//!
//! ```text
//! cargo run --release -p stratadb --example facade_commits -- [MODE] [COMMITS] [ROUNDS]
//! ```
//!
//! `MODE` is `no_durability` (default), `buffered`, `strict` or `ephemeral`; `COMMITS` defaults to
//! 100,000 and `ROUNDS` to 5. Each round opens a fresh database in a temporary directory,
//! times the puts and the final `flush()` (as the peer comparison does), and prints the
//! rate; the last line is the median.
use std::time::Instant;

use stratadb::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("no_durability", String::as_str);
    let commits: u64 = args.get(2).map_or(100_000, |n| n.parse().expect("COMMITS"));
    let rounds: usize = args.get(3).map_or(5, |n| n.parse().expect("ROUNDS"));
    let mut rates = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = match mode {
            "ephemeral" => Strata::ephemeral().expect("ephemeral"),
            "buffered" => StrataBuilder::new().path(dir.path()).open().expect("open"),
            "strict" => StrataBuilder::new()
                .strict()
                .path(dir.path())
                .open()
                .expect("open"),
            "no_durability" => StrataBuilder::new()
                .no_durability()
                .path(dir.path())
                .open()
                .expect("open"),
            other => panic!("unknown mode {other}: no_durability, buffered, strict or ephemeral"),
        };
        let run = db.runs.default_run();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ round as u64;
        let value = vec![7u8; 100];
        let t = Instant::now();
        for _ in 0..commits {
            // xorshift: cheap, and the same sequence in every build.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("k{:023}", rng % 100_000_000_000_000_000);
            db.kv
                .put(&run, &key, Value::Bytes(value.clone()))
                .expect("put");
        }
        db.flush().expect("flush");
        let rate = commits as f64 / t.elapsed().as_secs_f64();
        println!("round {round}: {rate:.0} commits/s");
        rates.push(rate);
        db.close().expect("close");
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{mode}: median {:.0} commits/s over {rounds} rounds of {commits}",
        rates[rates.len() / 2]
    );
}
