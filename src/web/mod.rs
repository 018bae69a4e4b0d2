//! HTML and other pages for people: the public status page, its feeds and badges, the
//! reporter's private page of a ticket, and the responder console.

pub mod console;
pub mod page;
mod render;
pub mod reporter;
pub mod status;
pub mod subscribe;
