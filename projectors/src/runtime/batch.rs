//! Gathering one batch from a consumer's message stream.
//!
//! A stream error ends the batch early but never discards what it already
//! holds: the consumer's position has moved past those messages, so dropping
//! them would let the next batch commit offsets beyond them, and they would be
//! lost for this consumer group.

use std::time::Duration;

use futures::{Stream, StreamExt};
use rdkafka::error::KafkaError;

/// What one gathering produced: the messages received, in order, and the
/// error that ended it early, if one did.
#[derive(Debug)]
pub struct Gathered<M> {
    pub messages: Vec<M>,
    pub error: Option<KafkaError>,
}

/// Waits up to `first_wait` for a first message, then takes more while each
/// arrives within `batch_wait`, up to `max`.
pub async fn gather<M, S>(
    stream: &mut S,
    first_wait: Duration,
    batch_wait: Duration,
    max: usize,
) -> Gathered<M>
where
    S: Stream<Item = Result<M, KafkaError>> + Unpin,
{
    let mut messages = Vec::new();
    let mut wait = first_wait;
    while messages.len() < max.max(1) {
        match tokio::time::timeout(wait, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Ok(message))) => messages.push(message),
            Ok(Some(Err(error))) => {
                return Gathered {
                    messages,
                    error: Some(error),
                }
            }
        }
        wait = batch_wait;
    }
    Gathered {
        messages,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use rdkafka::types::RDKafkaErrorCode;

    const WAIT: Duration = Duration::from_millis(200);

    fn unknown_topic() -> KafkaError {
        KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
    }

    #[tokio::test]
    async fn an_error_mid_batch_keeps_the_messages_received_before_it() {
        let mut messages = stream::iter(vec![Ok(1), Ok(2), Err(unknown_topic()), Ok(3)]);

        let first = gather(&mut messages, WAIT, WAIT, 10).await;
        assert_eq!(first.messages, vec![1, 2]);
        assert!(matches!(
            first.error,
            Some(KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition
            ))
        ));

        let second = gather(&mut messages, WAIT, WAIT, 10).await;
        assert_eq!(second.messages, vec![3]);
        assert!(second.error.is_none());
    }

    #[tokio::test]
    async fn an_error_before_any_message_is_reported_with_an_empty_batch() {
        let mut messages = stream::iter(vec![Err::<i32, _>(unknown_topic()), Ok(7)]);
        let gathered = gather(&mut messages, WAIT, WAIT, 10).await;
        assert!(gathered.messages.is_empty());
        assert!(gathered.error.is_some());
        assert_eq!(gather(&mut messages, WAIT, WAIT, 10).await.messages, [7]);
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_size() {
        let mut messages = stream::iter((1..=5).map(Ok::<i32, KafkaError>));
        assert_eq!(
            gather(&mut messages, WAIT, WAIT, 3).await.messages,
            [1, 2, 3]
        );
        assert_eq!(gather(&mut messages, WAIT, WAIT, 3).await.messages, [4, 5]);
    }
}
