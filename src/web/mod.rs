//! HTML and other pages for people: the public status page, its feeds and badges, and the
//! responder console.

pub mod console;
pub mod page;
pub mod public;
mod render;
pub mod status;
pub mod subscribe;
