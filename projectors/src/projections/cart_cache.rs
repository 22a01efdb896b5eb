//! The Redis cart cache: the owner's current cart under the seed's
//! `{prefix}cart:{userId}` (a guest's under `{prefix}cart:guest:{sessionId}`),
//! a JSON [`CachedCart`] whose key expires at the cart's `expires_at`.
//!
//! The entry is per owner, the events per cart, and one owner's carts come
//! one after the other (checked out, then a new one opened) on partitions
//! that do not keep their order between them. So each cart also has a state
//! key of its own, `{prefix}projection:cart-cache:{<entry key>}:cart:{id}`:
//! the cart folded to its stream version, or its ending. Events fold onto
//! the state key (a version at or below it changes nothing; an ending is
//! final), and the entry shows the most recently opened cart that is open:
//! a cart writes it when it is absent, is its own, or is of a cart opened
//! before it, and an ended or expired cart removes it only if it is its
//! own. The state key expires with the cart, an ending with the cart's last
//! `expires_at`, after which no event of the cart can show it again (a cart
//! past its expiry is not written).
//!
//! A batch takes two round trips: one pipeline reads each cart's state and
//! its owner's entry, the events are folded in memory, and one pipeline
//! writes each cart through a Lua script that first checks that neither
//! value changed since the read. A cart whose check fails (a concurrent
//! writer, or another cart of the same owner in the batch) is read, folded
//! and written again on its own until it wins.
//!
//! Both keys of a write share one Redis Cluster slot: the state key carries
//! the entry key as its hash tag (so the prefix must hold no braces; a
//! guest's session id is a hex digest). Generations, the "initialized"
//! marker and the server's run id work as in the product cache
//! (`product_cache`): a blue/green rebuild fills `{prefix}g{N}:` and moves
//! the pointer `{prefix}generation:cart-cache`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::event_store::RecordedEvent;
use infrastructure::redis_connection::{RedisConnection, RedisTimeouts};
use infrastructure::views::carts::{cart_cache_generation_key, cart_cache_key, CachedCart};
use redis::Script;

use super::cart_state::{by_cart, CartEvents, CartFold, TYPES};
use crate::runtime::{DeadLetter, NextGeneration, Projection, ProjectionError};
use crate::stores::redis::Generations;

pub const NAME: &str = "cart-cache";

/// The version of the keys' layout, in the "initialized" marker.
const ENTRY_LAYOUT: &str = "layout-1";
/// The longest one batch's writes may take before the store counts as down.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// KEYS: the cart's state, the owner's entry. ARGV: both as read ('' =
/// absent), then for each, what to do ('' = leave, '-' = delete, else the
/// value) and when it expires (ms since the epoch). Written = 1; either
/// value changed since the read = -1, and nothing is written.
const GUARDED_WRITE: &str = r"
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -1 end
for i = 1, 2 do
  local op, at = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  if op == '-' then redis.call('DEL', KEYS[i])
  elseif op ~= '' then redis.call('SET', KEYS[i], op, 'PXAT', at) end
end
return 1
";

/// What to do with one key.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Leave,
    Delete,
    Set { value: String, until: DateTime<Utc> },
}

impl Op {
    fn args(&self) -> (String, String) {
        match self {
            Op::Leave => (String::new(), String::new()),
            Op::Delete => ("-".to_owned(), String::new()),
            Op::Set { value, until } => (value.clone(), until.timestamp_millis().to_string()),
        }
    }
}

/// One cart's keys and what the fold read from them.
struct Read {
    state_key: String,
    entry_key: String,
    state: Option<String>,
    entry: Option<String>,
}

pub struct CartCache {
    place: Generations,
    upcasters: Upcasters,
    script: Script,
    batched: bool,
}

impl CartCache {
    pub async fn connect(url: &str, prefix: &str, upcasters: Upcasters) -> anyhow::Result<Self> {
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(5),
            operation: OPERATION_TIMEOUT,
        };
        // No connection yet: Redis down at boot holds back this projection
        // (its worker waits for the store), not the process.
        Ok(Self {
            place: Generations::new(
                RedisConnection::new(url, timeouts)?,
                prefix,
                cart_cache_generation_key(prefix),
                NAME,
                ENTRY_LAYOUT,
            ),
            upcasters,
            script: Script::new(GUARDED_WRITE),
            batched: true,
        })
    }

    /// Applies every event on its own, each read, folded and written before
    /// the next: the reference the batched path is compared with.
    pub fn one_event_at_a_time(mut self) -> Self {
        self.batched = false;
        self
    }

    async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, ProjectionError> {
        self.place.guarded(operation).await
    }

    /// The prefix of the generation this instance writes.
    fn prefix(&self) -> String {
        self.place.prefix()
    }

    fn own_key(&self, suffix: &str) -> String {
        self.place.own_key(suffix)
    }

    /// The keys a cart's events touch: its state, in the slot of its
    /// owner's entry, and that entry.
    fn keys_of(&self, cart: &CartEvents<'_>) -> (String, String) {
        let entry = cart_cache_key(&self.prefix(), &cart.owner);
        let state = self.own_key(&format!("{{{entry}}}:cart:{}", cart.cart_id));
        (state, entry)
    }

    /// Reads the state and entry of each of `carts` in one pipeline.
    async fn read(&self, carts: &[&CartEvents<'_>]) -> Result<Vec<Read>, redis::RedisError> {
        let mut redis = self.place.redis().connection().await?;
        let mut reads = redis::pipe();
        let keys: Vec<(String, String)> = carts.iter().map(|cart| self.keys_of(cart)).collect();
        for (state, entry) in &keys {
            reads.get(state).get(entry);
        }
        let values: Vec<Option<String>> = reads.query_async(&mut redis).await?;
        let mut values = values.into_iter();
        Ok(keys
            .into_iter()
            .map(|(state_key, entry_key)| Read {
                state_key,
                entry_key,
                state: values.next().flatten(),
                entry: values.next().flatten(),
            })
            .collect())
    }

    /// Adds the guarded write of `plan` to `pipe`.
    fn push_write(&self, pipe: &mut redis::Pipeline, read: &Read, plan: &(Op, Op)) {
        let (state, state_until) = plan.0.args();
        let (entry, entry_until) = plan.1.args();
        pipe.cmd("EVALSHA")
            .arg(self.script.get_hash())
            .arg(2)
            .arg(&read.state_key)
            .arg(&read.entry_key)
            .arg(read.state.as_deref().unwrap_or(""))
            .arg(read.entry.as_deref().unwrap_or(""))
            .arg(state)
            .arg(state_until)
            .arg(entry)
            .arg(entry_until);
    }

    /// Every cart of the batch in two round trips; the carts whose guard
    /// failed are returned, to be applied again on their own.
    async fn apply_batch<'c, 'e>(
        &self,
        carts: &'c [CartEvents<'e>],
    ) -> Result<(Vec<DeadLetter>, Vec<&'c CartEvents<'e>>), redis::RedisError> {
        let all: Vec<&CartEvents> = carts.iter().collect();
        let reads = self.read(&all).await?;
        let now = Utc::now();
        let mut letters = Vec::new();
        let mut writes = redis::pipe();
        writes.cmd("SCRIPT").arg("LOAD").arg(GUARDED_WRITE).ignore();
        let mut written = Vec::new();
        for (cart, read) in all.into_iter().zip(&reads) {
            match plan(cart, read, now) {
                Ok(None) => {}
                Ok(Some(plan)) => {
                    self.push_write(&mut writes, read, &plan);
                    written.push(cart);
                }
                Err(reason) => letters.extend(cart.refused(&reason)),
            }
        }
        if written.is_empty() {
            return Ok((letters, Vec::new()));
        }
        let mut redis = self.place.redis().connection().await?;
        let outcomes: Vec<i32> = writes.query_async(&mut redis).await?;
        let contended = written
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == -1)
            .map(|(cart, _)| cart)
            .collect();
        Ok((letters, contended))
    }

    /// `cart`'s events on their own, read, folded and written again until
    /// the guard holds.
    async fn apply_cart(
        &self,
        cart: &CartEvents<'_>,
    ) -> Result<Vec<DeadLetter>, redis::RedisError> {
        loop {
            let read = self.read(&[cart]).await?.remove(0);
            let plan = match plan(cart, &read, Utc::now()) {
                Ok(Some(plan)) => plan,
                Ok(None) => return Ok(Vec::new()),
                Err(reason) => return Ok(cart.refused(&reason)),
            };
            let mut pipe = redis::pipe();
            pipe.cmd("SCRIPT").arg("LOAD").arg(GUARDED_WRITE).ignore();
            self.push_write(&mut pipe, &read, &plan);
            let mut redis = self.place.redis().connection().await?;
            let outcome: Vec<i32> = pipe.query_async(&mut redis).await?;
            if outcome.first() != Some(&-1) {
                return Ok(Vec::new());
            }
        }
    }

    async fn delete_generation(&self) -> Result<(), ProjectionError> {
        self.place.delete_generation("cart:*").await
    }

    /// The cache under the prefix of `generation`, whatever is live.
    fn at_generation(&self, generation: u64) -> CartCache {
        CartCache {
            place: self.place.at(generation),
            upcasters: self.upcasters.clone(),
            script: Script::new(GUARDED_WRITE),
            batched: self.batched,
        }
    }
}

/// What `cart`'s events make of its state and its owner's entry as read:
/// `None` when they change nothing, or why they cannot apply.
fn plan(
    cart: &CartEvents<'_>,
    read: &Read,
    now: DateTime<Utc>,
) -> Result<Option<(Op, Op)>, String> {
    let mut state = match read.state.as_deref() {
        None => CartFold::Absent,
        Some(json) => serde_json::from_str::<CartFold>(json).map_err(|error| {
            format!(
                "stored cart state {} cannot be decoded: {error}",
                read.state_key
            )
        })?,
    };
    if !cart.fold_onto(&mut state, now)? {
        return Ok(None);
    }
    // The entry is derived from the states, so one that does not decode is
    // replaced rather than trusted.
    let shown = read
        .entry
        .as_deref()
        .map(|json| serde_json::from_str::<CachedCart>(json).ok());
    let own = matches!(&shown, Some(Some(entry)) if entry.cart_id == cart.cart_id);
    let (state_op, entry_op) = match (&state, state.live(now)) {
        (_, Some(live)) => {
            let newer = match &shown {
                None | Some(None) => true,
                Some(Some(entry)) => {
                    entry.cart_id == live.cart_id
                        || (entry.created_at, entry.cart_id) < (live.created_at, live.cart_id)
                }
            };
            let entry = match newer {
                true => Op::Set {
                    value: json(live),
                    until: live.expires_at,
                },
                false => Op::Leave,
            };
            (
                Op::Set {
                    value: json(&state),
                    until: live.expires_at,
                },
                entry,
            )
        }
        (CartFold::Ended { keep_until, .. }, None) => (
            match *keep_until > now {
                true => Op::Set {
                    value: json(&state),
                    until: *keep_until,
                },
                false => Op::Delete,
            },
            if own { Op::Delete } else { Op::Leave },
        ),
        // Absent, or open past its expiry: nothing to keep or show.
        (_, None) => (
            match read.state {
                Some(_) => Op::Delete,
                None => Op::Leave,
            },
            if own { Op::Delete } else { Op::Leave },
        ),
    };
    if state_op == Op::Leave && entry_op == Op::Leave {
        return Ok(None);
    }
    Ok(Some((state_op, entry_op)))
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("cart cache values serialize")
}

#[async_trait]
impl Projection for CartCache {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn apply(&self, events: &[RecordedEvent]) -> Result<Vec<DeadLetter>, ProjectionError> {
        self.guarded(self.place.follow_live()).await?;
        let (carts, mut letters) = by_cart(events, &self.upcasters);
        if carts.is_empty() {
            return Ok(letters);
        }
        if !self.batched {
            for cart in &carts {
                for index in 0..cart.events.len() {
                    let single = cart.single(index);
                    letters.extend(self.guarded(self.apply_cart(&single)).await?);
                }
            }
            return Ok(letters);
        }
        let (refused, contended) = self.guarded(self.apply_batch(&carts)).await?;
        letters.extend(refused);
        for cart in contended {
            letters.extend(self.guarded(self.apply_cart(cart)).await?);
        }
        Ok(letters)
    }

    /// False when the marker is missing (a flushed cache) or was written by
    /// another run of the server or layout of the keys.
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        self.place.is_intact().await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.guarded(self.place.follow_live()).await?;
        self.delete_generation().await
    }

    /// Marks the generation complete and, for the live instance, points
    /// readers at it again: a flushed server lost the pointer with the rest.
    async fn mark_rebuilt(&self) -> Result<(), ProjectionError> {
        self.place.mark_built().await
    }

    async fn next_generation(&self) -> Result<Option<Box<dyn NextGeneration>>, ProjectionError> {
        let live = self.guarded(self.place.live()).await?;
        let next = self.at_generation(live + 1);
        // What an interrupted rebuild left under that prefix.
        next.delete_generation().await?;
        Ok(Some(Box::new(NextCache {
            cache: next,
            old: live,
        })))
    }

    fn generation_swapped(&self) {
        self.place.mark_stale();
    }
}

struct NextCache {
    cache: CartCache,
    old: u64,
}

#[async_trait]
impl NextGeneration for NextCache {
    fn projection(&self) -> &dyn Projection {
        &self.cache
    }

    async fn swap(self: Box<Self>) -> Result<(), ProjectionError> {
        let cache = &self.cache;
        cache.guarded(cache.place.point_readers_here()).await?;
        cache.at_generation(self.old).delete_generation().await
    }
}
