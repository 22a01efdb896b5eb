//! The read models, one module each, and the product state two of them share.

pub mod account_mail;
pub mod activity_log;
pub mod catalog_tables;
pub mod product_cache;
pub mod product_search;
pub mod product_state;
pub mod users_tables;
