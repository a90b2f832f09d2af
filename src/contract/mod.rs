//! Contracts: the WSDL 1.1 + XSD model of every service soapgate serves, the
//! loader that builds it from a folder of `.wsdl`/`.xsd` files, request and
//! response validation, and the WSDL we publish at `?wsdl`.
//!
//! Pure: file access goes through the [`Files`] trait so the loader can be
//! tested on in-memory documents; nothing here is async or knows HTTP.

pub mod augment;
pub mod model;
pub mod publish;
pub mod validate;
pub mod wsdl;
pub mod xsd;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::{
    BoundVersion, Contract, ContractSet, FaultDetail, Operation, OperationFault, Payload, RpcPart,
    Service, Style,
};
pub use validate::validate_payload;
pub use xsd::{SchemaSet, Violation};

use crate::xml::Pos;

/// Read access to the contract folder. The loader never touches the file
/// system itself.
pub trait Files {
    /// The bytes of a file, or a message saying why not.
    fn read(&self, path: &Path) -> Result<Vec<u8>, String>;
}

/// A problem with a contract file, reported as `path:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl LoadError {
    pub fn new(path: impl Into<PathBuf>, pos: Pos, message: impl Into<String>) -> Self {
        LoadError {
            path: path.into(),
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Pos { line, col } = self.pos;
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            line.max(1),
            col.max(1),
            self.message
        )
    }
}

impl std::error::Error for LoadError {}
