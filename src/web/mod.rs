//! HTML and other pages for people: the public status page, its feeds and badges, and the
//! reporter's private page of a ticket.

pub mod page;
mod render;
pub mod reporter;
pub mod status;
pub mod subscribe;
