//! HTML and other pages for people: the public status page, its feeds and badges.

pub mod page;
mod render;
pub mod status;
pub mod subscribe;
