//! What each kind of store gives every read model kept in it, whatever the
//! read model: how a generation is built beside the live one and swapped in.
//! A new read model names its tables, index, key prefix or collection here
//! and gets blue/green rebuilds without another copy of the mechanics.

pub mod mongo;
pub mod postgres;
pub mod redis;
pub mod search;
