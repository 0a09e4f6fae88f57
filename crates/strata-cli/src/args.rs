//! The command line: every subcommand, its arguments and its `--help` examples.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not found (database, key, document, run, collection)
  2  usage error or bad input (bad arguments, bad JSON, bad JSONPath, wrong vector dimension)
  3  the database is damaged (verify found damage, or it cannot be opened)
  4  the database is in use by another process (it is locked)
  5  any other error (I/O, a run that does not accept writes, ...)

Values are JSON: 42, true, '\"text\"', '{\"a\": [1, 2]}'.
Runs are named by id, or 'default' (the default run, used when --run is not given).
Full reference: docs/cli.md.";

/// strata: look inside, change, export, import and verify a StrataDB database.
#[derive(Parser, Debug)]
#[command(name = "strata", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print JSON instead of tables: one document, or JSON Lines for streams
    /// (`events tail -f`).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// A database path plus the run to work in.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The database directory.
    pub path: PathBuf,
    /// The run: its id or `default`.
    #[arg(long, default_value = "default")]
    pub run: String,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Durability, versions, runs by state, keys per primitive, sizes, files, retention.
    #[command(after_help = "Examples:\n  strata info ./agent-db\n  strata info ./agent-db --json")]
    Info {
        /// The database directory.
        path: PathBuf,
    },
    /// List, show, create and change runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Key-value pairs.
    #[command(subcommand)]
    Kv(KvCmd),
    /// JSON documents, with JSONPath.
    #[command(subcommand)]
    Json(JsonCmd),
    /// Event streams.
    #[command(subcommand)]
    Events(EventsCmd),
    /// State cells with counters (compare-and-swap).
    #[command(subcommand)]
    State(StateCmd),
    /// Vector collections and similarity search.
    #[command(subcommand)]
    Vectors(VectorsCmd),
    /// Write every run and primitive, with all versions and history, as JSON Lines.
    #[command(after_help = "\
The format is documented in docs/export-format.md. A progress bar is shown on stderr
when it is a terminal.

Examples:
  strata export ./agent-db > dump.jsonl
  strata export ./agent-db --run 3f2a...-... -o run.jsonl
  strata export ./a | strata import ./b")]
    Export {
        /// The database directory.
        path: PathBuf,
        /// Only this run (its records and its run record).
        #[arg(long)]
        run: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read a dump written by `strata export`.
    #[command(after_help = "\
Into a directory that holds no database yet this is an exact restore: versions,
timestamps, event sequences, state counters, run ids and states come back as they were.
Into a database with data, every imported version is committed anew (new version
numbers and timestamps), and a note says so on stderr.

Examples:
  strata import ./restored < dump.jsonl
  strata import ./restored -i dump.jsonl")]
    Import {
        /// The database directory (created if missing).
        path: PathBuf,
        /// Read from this file instead of standard input.
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Check every file (log, snapshots, vector indexes) and the version invariants.
    #[command(after_help = "\
Exits with 3 when something is damaged, naming the file and the offset. Works without
opening the database, so also on a database another process has open.

Examples:
  strata verify ./agent-db
  strata verify ./agent-db --json")]
    Verify {
        /// The database directory.
        path: PathBuf,
    },
    /// Write a snapshot and the vector index files; drop the log they replace.
    #[command(after_help = "Examples:\n  strata checkpoint ./agent-db")]
    Checkpoint {
        /// The database directory.
        path: PathBuf,
    },
    /// Apply every run's retention policy now, then checkpoint.
    #[command(after_help = "Examples:\n  strata compact ./agent-db")]
    Compact {
        /// The database directory.
        path: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// Runs in creation order, optionally only those in one state.
    #[command(
        after_help = "Examples:\n  strata runs list ./db\n  strata runs list ./db --state failed --limit 10"
    )]
    List {
        /// The database directory.
        path: PathBuf,
        /// active, paused, completed, failed, cancelled or archived.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Everything known about one run.
    #[command(after_help = "Examples:\n  strata runs show ./db 3f2a1c9e-...")]
    Show {
        /// The database directory.
        path: PathBuf,
        /// The run id (or `default`).
        run: String,
    },
    /// Create an active run; prints its id.
    #[command(
        after_help = "Examples:\n  strata runs create ./db\n  strata runs create ./db --metadata '{\"agent\": \"planner\"}'"
    )]
    Create {
        /// The database directory.
        path: PathBuf,
        /// Metadata, as JSON.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Fork a run: a new active run that sees the run as of a version (now, or
    /// `--at`) and then diverges. Nothing is copied. Prints the new run's id.
    #[command(
        after_help = "Examples:\n  strata runs fork ./db 3f2a1c9e-...\n  strata runs fork ./db default --at 42 --json"
    )]
    Fork {
        #[command(flatten)]
        target: RunArg,
        /// The version of the run to fork at (default: its current state).
        #[arg(long)]
        at: Option<u64>,
    },
    /// Remove a run and every version of its data (forks made earlier keep what they
    /// saw). `strata compact` afterwards removes its bytes from the files too.
    #[command(
        after_help = "Examples:\n  strata runs purge ./db 3f2a1c9e-...\n  strata runs purge ./db 3f2a1c9e-... --with-forks && strata compact ./db"
    )]
    Purge {
        #[command(flatten)]
        target: RunArg,
        /// Purge the run's forks (and theirs) too.
        #[arg(long)]
        with_forks: bool,
    },
    /// What changed in a run between two versions (`--from`, `--to`, default now), or
    /// how it differs from another run (`--against`, e.g. a fork's parent): one line
    /// per key added, removed or changed.
    #[command(
        after_help = "Examples:\n  strata runs diff ./db 3f2a1c9e-... --from 42\n  strata runs diff ./db FORK-ID --against PARENT-ID --json"
    )]
    Diff {
        #[command(flatten)]
        target: RunArg,
        /// The version to compare from.
        #[arg(long, conflicts_with = "against", required_unless_present = "against")]
        from: Option<u64>,
        /// The version to compare to (default: now).
        #[arg(long, requires = "from")]
        to: Option<u64>,
        /// Another run to compare with (its state now, as `before`).
        #[arg(long)]
        against: Option<String>,
    },
    /// Mark a run completed.
    #[command(after_help = "Examples:\n  strata runs close ./db 3f2a1c9e-...")]
    Close(RunArg),
    /// Mark a run failed, with an error message.
    #[command(
        after_help = "Examples:\n  strata runs fail ./db 3f2a1c9e-... --error 'tool timed out'"
    )]
    Fail {
        #[command(flatten)]
        target: RunArg,
        /// Why it failed.
        #[arg(long)]
        error: String,
    },
    /// Mark a run cancelled.
    #[command(after_help = "Examples:\n  strata runs cancel ./db 3f2a1c9e-...")]
    Cancel(RunArg),
    /// Archive a run (terminal: the soft delete of a run).
    #[command(after_help = "Examples:\n  strata runs archive ./db 3f2a1c9e-...")]
    Archive(RunArg),
    /// Pause an active run.
    #[command(after_help = "Examples:\n  strata runs pause ./db 3f2a1c9e-...")]
    Pause(RunArg),
    /// Resume a paused run.
    #[command(after_help = "Examples:\n  strata runs resume ./db 3f2a1c9e-...")]
    Resume(RunArg),
}

#[derive(Args, Debug)]
pub struct RunArg {
    /// The database directory.
    pub path: PathBuf,
    /// The run id.
    pub run: String,
}

#[derive(Subcommand, Debug)]
pub enum KvCmd {
    /// The value of a key (optionally as of an older version).
    #[command(
        after_help = "Examples:\n  strata kv get ./db user:1\n  strata kv get ./db user:1 --at 42 --json"
    )]
    Get {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// Read as of this commit version.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Set a key to a JSON value.
    #[command(
        after_help = "Examples:\n  strata kv set ./db user:1 '{\"name\": \"Alice\"}'\n  strata kv set ./db greeting '\"hello\"'"
    )]
    Set {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// The value, as JSON.
        value: String,
    },
    /// Delete a key (exit 1 if it did not exist).
    #[command(after_help = "Examples:\n  strata kv delete ./db user:1")]
    Delete {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
    },
    /// Keys, sorted, optionally only those with a prefix.
    #[command(
        after_help = "Examples:\n  strata kv list ./db\n  strata kv list ./db --prefix user: --limit 20"
    )]
    List {
        #[command(flatten)]
        target: Target,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Show the values too.
        #[arg(long)]
        values: bool,
    },
    /// Versions of a key, newest first.
    #[command(after_help = "Examples:\n  strata kv history ./db counter --limit 5")]
    History {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JsonCmd {
    /// A document, or the part of it a JSONPath selects.
    #[command(
        after_help = "Examples:\n  strata json get ./db profile:1\n  strata json get ./db profile:1 --path '$.address.city'\n  strata json get ./db profile:1 --at 17"
    )]
    Get {
        #[command(flatten)]
        target: Target,
        /// The document key.
        key: String,
        /// A JSONPath (default: the whole document).
        #[arg(long = "path", id = "jsonpath", value_name = "JSONPATH")]
        jsonpath: Option<String>,
        /// Read as of this commit version (whole document only).
        #[arg(long, conflicts_with = "jsonpath")]
        at: Option<u64>,
    },
    /// Set a document, or the value at a JSONPath inside it.
    #[command(
        after_help = "Examples:\n  strata json set ./db profile:1 '{\"name\": \"Alice\"}'\n  strata json set ./db profile:1 '30' --path '$.age'"
    )]
    Set {
        #[command(flatten)]
        target: Target,
        /// The document key.
        key: String,
        /// The value, as JSON.
        value: String,
        /// Where to set it (default: replace the document).
        #[arg(long = "path", id = "jsonpath", value_name = "JSONPATH")]
        jsonpath: Option<String>,
    },
    /// Apply an RFC 7396 merge patch.
    #[command(
        after_help = "Examples:\n  strata json merge ./db profile:1 '{\"age\": 31, \"nickname\": null}'"
    )]
    Merge {
        #[command(flatten)]
        target: Target,
        /// The document key.
        key: String,
        /// The patch, as JSON.
        patch: String,
        /// Where to apply it.
        #[arg(
            long = "path",
            id = "jsonpath",
            value_name = "JSONPATH",
            default_value = "$"
        )]
        jsonpath: String,
    },
    /// Delete a document, or every node a JSONPath selects.
    #[command(
        after_help = "Examples:\n  strata json delete ./db profile:1\n  strata json delete ./db profile:1 --path '$.tags[0]'"
    )]
    Delete {
        #[command(flatten)]
        target: Target,
        /// The document key.
        key: String,
        /// What to delete inside the document.
        #[arg(long = "path", id = "jsonpath", value_name = "JSONPATH")]
        jsonpath: Option<String>,
    },
    /// Document keys, sorted.
    #[command(after_help = "Examples:\n  strata json list ./db --prefix profile:")]
    List {
        #[command(flatten)]
        target: Target,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Versions of a document, newest first.
    #[command(after_help = "Examples:\n  strata json history ./db profile:1")]
    History {
        #[command(flatten)]
        target: Target,
        /// The document key.
        key: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// Append an event (a JSON object); prints its sequence number.
    #[command(
        after_help = "Examples:\n  strata events append ./db trace '{\"tool\": \"search\", \"ms\": 12}'"
    )]
    Append {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// The event, a JSON object.
        payload: String,
    },
    /// The first events of a stream.
    #[command(after_help = "Examples:\n  strata events read ./db trace --limit 20")]
    Read {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Events with sequence numbers START..=END.
    #[command(after_help = "Examples:\n  strata events range ./db trace 10 20")]
    Range {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// First sequence number (events start at 1).
        start: u64,
        /// Last sequence number.
        end: u64,
    },
    /// The last events of a stream; with -f, keep printing new ones.
    #[command(after_help = "\
With -f the database is reopened every --interval-ms to look for new events, so it
follows appends made by other short-lived processes (such as `strata events append`).
Following a database that a long-running process keeps open needs the read-only open
of storage v2; until then the open fails with exit code 4.

Examples:
  strata events tail ./db trace -n 5
  strata events tail ./db trace -f --json")]
    Tail {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// How many of the last events.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Keep printing new events (stop with Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// How often to look for new events with -f.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// Streams that have events.
    #[command(after_help = "Examples:\n  strata events streams ./db")]
    Streams {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum StateCmd {
    /// A cell's value and counter.
    #[command(after_help = "Examples:\n  strata state get ./db agent:status")]
    Get {
        #[command(flatten)]
        target: Target,
        /// The cell.
        key: String,
    },
    /// Set a cell (its counter goes up by one).
    #[command(after_help = "Examples:\n  strata state set ./db agent:status '\"running\"'")]
    Set {
        #[command(flatten)]
        target: Target,
        /// The cell.
        key: String,
        /// The value, as JSON.
        value: String,
    },
    /// Set a cell only if its counter is still EXPECT (exit 5 if it is not).
    #[command(
        after_help = "Examples:\n  strata state cas ./db lock '\"mine\"' --expect-missing\n  strata state cas ./db agent:status '\"done\"' --expect 3"
    )]
    Cas {
        #[command(flatten)]
        target: Target,
        /// The cell.
        key: String,
        /// The new value, as JSON.
        value: String,
        /// The counter the cell must have.
        #[arg(long, required_unless_present = "expect_missing")]
        expect: Option<u64>,
        /// The cell must not exist.
        #[arg(long, conflicts_with = "expect")]
        expect_missing: bool,
    },
    /// Delete a cell (exit 1 if it did not exist).
    #[command(after_help = "Examples:\n  strata state delete ./db lock")]
    Delete {
        #[command(flatten)]
        target: Target,
        /// The cell.
        key: String,
    },
    /// Versions of a cell, newest first.
    #[command(after_help = "Examples:\n  strata state history ./db agent:status")]
    History {
        #[command(flatten)]
        target: Target,
        /// The cell.
        key: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum VectorsCmd {
    /// Collections of the run, with dimension, metric and size.
    #[command(after_help = "Examples:\n  strata vectors collections ./db")]
    Collections {
        #[command(flatten)]
        target: Target,
    },
    /// Create a collection.
    #[command(
        after_help = "Examples:\n  strata vectors create ./db docs --dimension 384 --metric cosine"
    )]
    Create {
        #[command(flatten)]
        target: Target,
        /// The collection name.
        collection: String,
        /// The vector dimension.
        #[arg(long)]
        dimension: usize,
        /// cosine, euclidean or dot_product.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// none, or int8: the graph compares an int8 copy of each vector (faster inserts
        /// and searches; scores stay exact).
        #[arg(long, default_value = "none")]
        quantization: String,
    },
    /// Insert or replace a vector.
    #[command(
        after_help = "Examples:\n  strata vectors upsert ./db docs doc:1 '[0.1, 0.2, 0.3]' --metadata '{\"tag\": \"a\"}'"
    )]
    Upsert {
        #[command(flatten)]
        target: Target,
        /// The collection.
        collection: String,
        /// The vector's key.
        key: String,
        /// The vector, a JSON array of numbers.
        vector: String,
        /// Metadata, as JSON.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// A vector and its metadata.
    #[command(after_help = "Examples:\n  strata vectors get ./db docs doc:1")]
    Get {
        #[command(flatten)]
        target: Target,
        /// The collection.
        collection: String,
        /// The vector's key.
        key: String,
    },
    /// Delete a vector (exit 1 if it did not exist).
    #[command(after_help = "Examples:\n  strata vectors delete ./db docs doc:1")]
    Delete {
        #[command(flatten)]
        target: Target,
        /// The collection.
        collection: String,
        /// The vector's key.
        key: String,
    },
    /// The K most similar vectors.
    #[command(after_help = "\
Filters are JSON, e.g. {\"Eq\": [\"tag\", \"a\"]}, {\"Range\": {\"field\": \"year\", \"gte\": 2020}},
{\"And\": [...]}, {\"Or\": [...]}, {\"Not\": {...}}, {\"In\": [\"tag\", [\"a\", \"b\"]]},
{\"Contains\": [\"tags\", \"x\"]}, {\"Exists\": \"tag\"}.

Examples:
  strata vectors search ./db docs --query '[0.1, 0.2, 0.3]' -k 5
  strata vectors search ./db docs --query-file q.json --filter '{\"Eq\": [\"tag\", \"a\"]}'")]
    Search {
        #[command(flatten)]
        target: Target,
        /// The collection.
        collection: String,
        /// The query vector, a JSON array.
        #[arg(long, required_unless_present = "query_file")]
        query: Option<String>,
        /// A file holding the query vector as a JSON array (`-` for standard input).
        #[arg(long, conflicts_with = "query")]
        query_file: Option<PathBuf>,
        /// How many results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// A metadata filter, as JSON.
        #[arg(long)]
        filter: Option<String>,
        /// Include each match's vector.
        #[arg(long)]
        with_vectors: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
