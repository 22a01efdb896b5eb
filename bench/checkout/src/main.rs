//! `checkout-bench`: checkout throughput and latency of the real command API,
//! driven over HTTP as customers drive it. See `docs/benchmarks.md`.
//!
//! It sets up its own catalog (a category, then `--products` distinct active
//! products or one hot one, with stock enough that nothing sells out) and
//! one customer per connection: a customer has one active cart at a time, so
//! two loops on one account would conflict on their own cart, not the stock.
//! Each loop is closed: open a cart, add one item, check out, again. Every
//! command carries an `Idempotency-Key` and is sent again with it on a 409
//! `version-conflict`, a 503 or a transport error, as a careful client would:
//! a checkout whose answer was lost after its append is answered from the
//! key, never placed twice. The server's own conflict retries, which no
//! client sees, come from its `command_version_conflicts_total`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// A command that still has no decision after this many tries fails the
/// iteration: far beyond what a conflict or a shed request needs.
const MAX_TRIES: u32 = 50;
const CUSTOMER_PASSWORD: &str = "checkout bench passphrase";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Each item is a random product of `--products`.
    Distinct,
    /// Every item is the same product: a flash sale.
    Hot,
}

#[derive(Parser, Debug)]
#[command(about = "Checkout throughput and latency against the command API over HTTP")]
struct Args {
    /// The command API's base URL.
    #[arg(long, env = "BENCH_URL", default_value = "http://127.0.0.1:18180")]
    url: String,
    /// An admin's bearer token; or `--admin-email` and `--admin-password`.
    #[arg(long, env = "BENCH_TOKEN")]
    token: Option<String>,
    #[arg(long, env = "BENCH_ADMIN_EMAIL")]
    admin_email: Option<String>,
    #[arg(long, env = "BENCH_ADMIN_PASSWORD")]
    admin_password: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::Distinct)]
    mode: Mode,
    /// Products in distinct mode (hot mode has one).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    products: u32,
    /// Concurrent loops, each a customer of its own on a connection of its
    /// own. Registering one costs two argon2id hashes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Seconds of unmeasured loops first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Stock of each product.
    #[arg(long, default_value_t = 1_000_000)]
    stock: i64,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// No answer at all: status 0, the error as the problem's type.
    fn transport(error: reqwest::Error) -> Self {
        let body = json!({ "type": error.to_string() });
        Self { status: 0, body }
    }
}

/// What one loop, and then the whole run, counted.
struct Tally {
    /// A checkout from its first try to its decision, client retries included.
    checkout: Histogram<u64>,
    /// Opening the cart, adding the item and checking out.
    iteration: Histogram<u64>,
    /// Measured checkouts placed.
    placed: u64,
    /// Every checkout placed, warm-up included: the denominator of the
    /// server's conflict counter, which cannot tell warm-up apart.
    placed_all: u64,
    /// "route reason" → tries sent again.
    retries: BTreeMap<String, u64>,
    /// "route status type" → commands that ended without success.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        Self {
            checkout: histogram(),
            iteration: histogram(),
            placed: 0,
            placed_all: 0,
            retries: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.checkout.add(&other.checkout).expect("same bounds");
        self.iteration.add(&other.iteration).expect("same bounds");
        self.placed += other.placed;
        self.placed_all += other.placed_all;
        for (key, n) in other.retries {
            *self.retries.entry(key).or_default() += n;
        }
        for (key, n) in other.errors {
            *self.errors.entry(key).or_default() += n;
        }
    }
}

/// The command API as one client sees it: a connection pool of its own and,
/// for a customer or the admin, the session's bearer token.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    url: Arc<str>,
}

impl Api {
    fn new(url: &str, token: Option<&str>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
            headers.insert(AUTHORIZATION, bearer);
        }
        let client = reqwest::Client::builder().default_headers(headers);
        let client = client.timeout(Duration::from_secs(60)).build()?;
        let url = url.into();
        Ok(Self { client, url })
    }

    /// Sends one command under one `Idempotency-Key` until it has a decision.
    async fn send(&self, method: Method, path: &str, body: &Value, tally: &mut Tally) -> Answer {
        // The route's template, so that counts do not split by cart.
        let template = path
            .strip_prefix("/v1/carts/")
            .map_or(path, |_| "/v1/carts/{id}/items");
        let key = Uuid::now_v7().to_string();
        for tries in 1.. {
            let sent = self
                .client
                .request(method.clone(), format!("{}{path}", self.url))
                .header("Idempotency-Key", &key)
                .json(body)
                .send()
                .await;
            let last = tries >= MAX_TRIES;
            let reason = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or_default();
                    let conflict = status == 409 && problem_type(&body) == "version-conflict";
                    if !(conflict || status == 503) || last {
                        return Answer { status, body };
                    }
                    ["503", "409 version-conflict"][usize::from(conflict)]
                }
                Err(error) if last => return Answer::transport(error),
                Err(_) => "transport error",
            };
            let retries = tally.retries.entry(format!("{method} {template} {reason}"));
            *retries.or_default() += 1;
            // A shed request is sent again after a pause, so that retries do
            // not feed the overload; a lost race is decided again at once.
            if reason != "409 version-conflict" {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        unreachable!("the loop returns at its last try")
    }

    async fn post(&self, path: &str, body: Value, tally: &mut Tally) -> Answer {
        self.send(Method::POST, path, &body, tally).await
    }

    /// A setup command, which must succeed.
    async fn must(&self, method: &str, path: &str, body: Value, want: u16) -> Result<Value> {
        let (method, mut ignored) = (Method::from_bytes(method.as_bytes())?, Tally::new());
        let Answer { status, body } = self.send(method.clone(), path, &body, &mut ignored).await;
        if status != want {
            bail!("{method} {path}: {status} (expected {want}): {body}");
        }
        Ok(body)
    }
}

fn problem_type(body: &Value) -> &str {
    let kind = body["type"].as_str().unwrap_or("-");
    kind.rsplit('/').next().unwrap_or(kind)
}

/// Up to `parallel` of `count` setup steps at once; the first failure ends it.
async fn in_parallel<T, F, Fut>(count: u32, parallel: usize, step: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(parallel));
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let (gate, step) = (gate.clone(), step(n));
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                step.await
            })
        })
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await??);
    }
    Ok(done)
}

/// The server's `command_version_conflicts_total`, by outcome.
async fn server_conflicts(url: &str) -> Result<(u64, u64)> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    let sum = |outcome: &str| {
        let series = format!("command_version_conflicts_total{{outcome=\"{outcome}\"}}");
        let values = text.lines().filter_map(|line| line.strip_prefix(&series));
        values
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok((sum("retried"), sum("exhausted")))
}

/// The random product of an iteration. xorshift: the choice needs to be
/// spread, not unpredictable, and this keeps the crate free of `rand`.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Loop {
    api: Api,
    products: Arc<Vec<String>>,
    measure_from: Instant,
    end: Instant,
    seed: u64,
}

impl Loop {
    async fn run(self) -> Tally {
        let (api, mut tally) = (&self.api, Tally::new());
        let mut random = self.seed | 1;
        let mut cart: Option<Uuid> = None;
        let address = json!({ "first_name": "Bench", "last_name": "Buyer",
            "street_address_1": "1 Sukhumvit Rd", "city": "Bangkok",
            "state_province": "Bangkok", "postal_code": "10110", "country": "TH" });
        while Instant::now() < self.end {
            let started = Instant::now();
            // The cart of a checkout that failed is used again.
            let cart_id = match cart {
                Some(id) => id,
                None => {
                    let id = Uuid::now_v7();
                    let body = json!({ "cart_id": id });
                    let answer = api.post("/v1/carts", body, &mut tally).await;
                    if answer.status != 201 {
                        failed(&mut tally, "POST /v1/carts", &answer).await;
                        continue;
                    }
                    *cart.insert(id)
                }
            };
            let product = &self.products[next_random(&mut random) as usize % self.products.len()];
            let path = format!("/v1/carts/{cart_id}/items");
            let body = json!({ "product_id": product, "quantity": 1 });
            let answer = api.post(&path, body, &mut tally).await;
            if answer.status != 201 {
                // A cart that ended some other way is replaced.
                if matches!(answer.status, 404 | 422) {
                    cart = None;
                }
                failed(&mut tally, "POST /v1/carts/{id}/items", &answer).await;
                continue;
            }
            let body = json!({ "cart_id": cart_id, "shipping_address": address,
                "billing_address": address, "shipping_method": "standard",
                "payment_method": "credit_card" });
            let checkout_started = Instant::now();
            let answer = api.post("/v1/orders", body, &mut tally).await;
            let checkout_took = checkout_started.elapsed();
            if answer.status != 201 {
                if problem_type(&answer.body) == "cart-checked-out" {
                    cart = None;
                }
                failed(&mut tally, "POST /v1/orders", &answer).await;
                continue;
            }
            cart = None;
            tally.placed_all += 1;
            if started >= self.measure_from {
                tally.placed += 1;
                tally.checkout.saturating_record(micros(checkout_took));
                tally.iteration.saturating_record(micros(started.elapsed()));
            }
        }
        tally
    }
}

/// Counts a refusal; the pause keeps a loop that meets a persistent one from
/// spinning on it.
async fn failed(tally: &mut Tally, route: &str, answer: &Answer) {
    let key = format!("{route} {} {}", answer.status, problem_type(&answer.body));
    *tally.errors.entry(key).or_default() += 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

async fn admin_token(args: &Args) -> Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let (Some(email), Some(password)) = (&args.admin_email, &args.admin_password) else {
        bail!("give --token, or --admin-email and --admin-password");
    };
    let body = json!({ "email": email, "password": password });
    let anonymous = Api::new(&args.url, None)?;
    token_of(anonymous.must("POST", "/v1/sessions", body, 201).await?)
}

fn token_of(login: Value) -> Result<String> {
    let token = login["token"].as_str().context("a login without a token")?;
    Ok(token.to_owned())
}

/// The category and the products, active: their ids.
async fn catalog(args: &Args, admin: Api, run: String) -> Result<Vec<String>> {
    let body =
        json!({ "name": format!("Checkout bench {run}"), "slug": format!("checkout-bench-{run}") });
    let category = admin.must("POST", "/v1/categories", body, 201).await?;
    let category = category["id"].clone();
    let count = match args.mode {
        Mode::Distinct => args.products,
        Mode::Hot => 1,
    };
    let stock = args.stock;
    in_parallel(count, args.connections as usize, move |n| {
        let (admin, run, category) = (admin.clone(), run.clone(), category.clone());
        async move {
            let (sku, slug) = (format!("CB-{run}-{n}"), format!("checkout-bench-{run}-{n}"));
            let body = json!({ "sku": sku, "name": format!("Checkout bench {n}"), "slug": slug,
                "category_id": category, "regular_price": "990.00", "stock_quantity": stock });
            let product = admin.must("POST", "/v1/products", body, 201).await?;
            let id = product["id"].as_str().context("no product id")?.to_owned();
            let status = json!({ "status": "active" });
            admin
                .must("PUT", &format!("/v1/products/{id}/status"), status, 200)
                .await?;
            Ok(id)
        }
    })
    .await
}

/// Registers and logs in the customers: their tokens.
async fn customers(args: &Args, run: String) -> Result<Vec<String>> {
    let anonymous = Api::new(&args.url, None)?;
    // Two at a time: each costs two argon2id hashes on the server's two
    // cores, and more in flight would only queue.
    in_parallel(args.connections, 2, move |n| {
        let (anonymous, email) = (anonymous.clone(), format!("cb-{run}-{n}@bench.test"));
        async move {
            let body = json!({ "email": email, "password": CUSTOMER_PASSWORD,
                "first_name": "Bench", "last_name": "Buyer" });
            anonymous.must("POST", "/v1/users", body, 201).await?;
            let body = json!({ "email": email, "password": CUSTOMER_PASSWORD });
            token_of(anonymous.must("POST", "/v1/sessions", body, 201).await?)
        }
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    args.url = args.url.trim_end_matches('/').to_owned();
    // Names the run's skus, slugs and emails, so that runs against one
    // database do not collide.
    let run = Uuid::now_v7().simple().to_string()[..12].to_owned();
    let admin = Api::new(&args.url, Some(&admin_token(&args).await?))?;
    let setup = Instant::now();
    let products = Arc::new(catalog(&args, admin, run.clone()).await?);
    let tokens = customers(&args, run).await?;
    println!(
        "setup: {} active product(s), stock {} each; {} customers; {:.1} s",
        products.len(),
        args.stock,
        tokens.len(),
        setup.elapsed().as_secs_f64()
    );

    let before = server_conflicts(&args.url).await?;
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut loops = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let worker = Loop {
            api: Api::new(&args.url, Some(token))?,
            products: products.clone(),
            measure_from,
            end,
            seed: 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(n as u64 + 1),
        };
        loops.push(tokio::spawn(worker.run()));
    }
    let mut tally = Tally::new();
    for worker in loops {
        tally.merge(worker.await?);
    }
    // Closed loops finish the iteration under way at `end`: the measured
    // window lasts until the last of them.
    let measured = measure_from.elapsed().as_secs_f64();
    let after = server_conflicts(&args.url).await?;
    let conflicts = (after.0 - before.0, after.1 - before.1);
    report(&args, &tally, measured, conflicts);
    if tally.placed == 0 {
        bail!("no checkout was placed");
    }
    Ok(())
}

fn report(args: &Args, tally: &Tally, measured: f64, (retried, exhausted): (u64, u64)) {
    let mode = match args.mode {
        Mode::Distinct => format!("distinct ({} products)", args.products),
        Mode::Hot => "hot (1 product)".to_owned(),
    };
    let rate = tally.placed as f64 / measured;
    let (c, i) = (&tally.checkout, &tally.iteration);
    let client_retries: u64 = tally.retries.values().sum();
    let errors: u64 = tally.errors.values().sum();
    let per_checkout = retried as f64 / tally.placed_all.max(1) as f64;
    let quantiles = |h: &Histogram<u64>| {
        let (p50, p99, max) = (ms(h, 0.5), ms(h, 0.99), h.max() as f64 / 1000.0);
        format!("p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms")
    };
    println!(
        "{mode}: {} connections, {} s measured after {} s of warm-up\n\
         checkouts placed: {} in {measured:.1} s = {rate:.1}/s\n\
         checkout (POST /v1/orders, first try to decision): {}\n\
         iteration (open cart + add item + checkout): {}\n\
         client-visible retries: {client_retries} {:?}\n\
         errors: {errors} {:?}\n\
         server version conflicts (command_version_conflicts_total, warm-up included): \
         retried {retried}, exhausted {exhausted}; {per_checkout:.3} retries per placed checkout \
         ({} placed)",
        args.connections,
        args.duration,
        args.warmup,
        tally.placed,
        quantiles(c),
        quantiles(i),
        tally.retries,
        tally.errors,
        tally.placed_all,
    );
    let (p50, p99, iteration_p50) = (ms(c, 0.5), ms(c, 0.99), ms(i, 0.5));
    println!(
        "| {mode} | {} | {rate:.1} | {p50:.1} ms | {p99:.1} ms | {iteration_p50:.1} ms \
         | {client_retries} | {per_checkout:.2} | {errors} |",
        args.connections
    );
}
