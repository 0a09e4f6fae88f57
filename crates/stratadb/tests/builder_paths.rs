//! `StrataBuilder::path` accepts every path type `Strata::open` does.
use std::path::{Path, PathBuf};

use stratadb::prelude::*;

#[test]
fn builder_takes_any_path_like() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = StrataBuilder::new().path(&dir).strict().open()?;
    db.kv.set("k", 1i64)?;
    assert_eq!(db.path(), dir.path());
    db.close()?;
    let as_str = dir.path().to_str().expect("utf-8 temp path").to_owned();
    let reopen = |b: StrataBuilder| -> Result<()> {
        let db = b.open()?;
        assert_eq!(db.kv.get("k")?.and_then(|v| v.as_int()), Some(1));
        db.close()
    };
    reopen(StrataBuilder::new().path(&as_str))?;
    reopen(
        StrataBuilder::new()
            .path(PathBuf::from(&as_str))
            .no_durability(),
    )?;
    reopen(
        StrataBuilder::new()
            .path(Path::new(&as_str))
            .buffered_with(10, 100),
    )?;
    Ok(())
}
