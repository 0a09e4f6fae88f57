//! `stratadb._stratadb`: the Python extension module behind the `stratadb` package.
//!
//! It is a thin layer over the `stratadb` facade crate: [`db`] holds the database
//! handle, its builder and the transaction handle, [`prims`] the primitive handles,
//! [`conv`] the value conversions and [`errors`] the exception hierarchy. Every call into
//! the engine releases the GIL (`Python::detach`), so Python threads and
//! `asyncio.to_thread` run database calls in parallel. The pure-Python part of the
//! package (`python/stratadb/`) adds the convenience functions and the LangGraph
//! integration.
#![deny(missing_docs)]

mod conv;
mod db;
mod errors;
mod prims;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _stratadb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<db::PyStrata>()?;
    m.add_class::<db::PyBuilder>()?;
    m.add_class::<db::PyTxn>()?;
    m.add_class::<db::PyView>()?;
    m.add_class::<conv::PyVersioned>()?;
    m.add_class::<prims::PyKv>()?;
    m.add_class::<prims::PyJson>()?;
    m.add_class::<prims::PyEvents>()?;
    m.add_class::<prims::PyState>()?;
    m.add_class::<prims::PyVectors>()?;
    m.add_class::<prims::PyRuns>()?;
    m.add_class::<prims::PyVectorMatch>()?;
    m.add("MAX_KEY_BYTES", stratadb::limits::MAX_KEY_BYTES)?;
    m.add("MAX_VALUE_BYTES", stratadb::limits::MAX_VALUE_BYTES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
