// `sqlx::migrate!` embeds the migrations at compile time, and on stable Rust
// cargo does not know it read them: a new migration must rebuild this crate.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
