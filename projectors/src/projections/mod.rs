//! The read models, one module each, the product state two of them share,
//! and the cart fold the two cart read models share.

pub mod account_mail;
pub mod activity_log;
pub mod cart_cache;
pub mod cart_documents;
pub mod cart_state;
pub mod catalog_tables;
pub mod notification_documents;
pub mod notification_streams;
pub mod order_notifications;
pub mod orders_tables;
pub mod payments_tables;
pub mod product_cache;
pub mod product_search;
pub mod product_state;
pub mod promotion_tables;
pub mod users_tables;
