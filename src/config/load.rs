//! TEMPORARY stub.
use std::path::Path;
use super::{Config, ConfigErrors};
pub fn load(_path: &Path, _env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> { todo!() }
