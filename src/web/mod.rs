//! HTML and other pages for people: the public status page.

pub mod public;
pub mod status;
pub mod subscribe;
