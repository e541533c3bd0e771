//! Analytics: every applied event and every change of a call record, published for whoever
//! wants them (an EventBridge bus). Never on the path that matters: a failure is counted, not
//! raised.

use std::future::Future;

use serde_json::Value;

/// One publication: `detail_type` (`call.event`, `call.completed`, `call.updated`) and its
/// detail (the canonical event, or the call record; large facts by reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub detail_type: &'static str,
    pub detail: Value,
}

pub trait Analytics: Send + Sync {
    /// Whether anything is published: without a bus, the publications are not even built.
    fn enabled(&self) -> bool {
        true
    }

    /// Publishes what it can; returns how many publications were lost after its retries.
    fn publish(&self, publications: Vec<Publication>) -> impl Future<Output = usize> + Send;
}

/// No analytics bus configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnalytics;

impl Analytics for NoAnalytics {
    fn enabled(&self) -> bool {
        false
    }

    async fn publish(&self, _publications: Vec<Publication>) -> usize {
        0
    }
}

impl<A: Analytics> Analytics for Option<A> {
    fn enabled(&self) -> bool {
        self.as_ref().is_some_and(A::enabled)
    }

    async fn publish(&self, publications: Vec<Publication>) -> usize {
        match self {
            Some(analytics) => analytics.publish(publications).await,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bus;

    impl Analytics for Bus {
        async fn publish(&self, _publications: Vec<Publication>) -> usize {
            0
        }
    }

    #[test]
    fn only_a_configured_bus_is_published_to() {
        assert!(!NoAnalytics.enabled());
        assert!(!None::<Bus>.enabled());
        assert!(Some(Bus).enabled());
    }
}
