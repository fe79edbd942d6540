//! Giving a lease to a worker of the real KCL sharing the table, as the leader asks: the
//! consumer is shut down first (its processor may checkpoint), and only once it has ended is
//! the lease handed over in the table, so the shard never has two workers at once and the
//! receiver starts from the checkpoint just written.

use super::Coordinator;
use crate::processor::ProcessorFactory;
use crate::shard_consumer::Signal;

impl<F: ProcessorFactory> Coordinator<F> {
    /// Starts giving a held lease to `to`; a lease not held (any more) is left alone.
    pub(super) fn give(&mut self, shard: &str, to: &str) {
        let Some(held) = self.held.get(shard) else {
            return;
        };
        if self
            .giving
            .insert(shard.to_owned(), to.to_owned())
            .is_none()
        {
            tracing::info!(shard, to, "giving a lease to a KCL worker");
            let _ = held.signal.send(Signal::Shutdown);
        }
    }

    /// Whether a consumer that shut down was being given away.
    pub(super) fn is_giving(&self, shard: &str) -> bool {
        self.giving.contains_key(shard)
    }

    /// The consumer of a lease being given has ended: hands the lease over.
    pub(super) async fn finish_give(&mut self, shard: &str) {
        let Some(to) = self.giving.remove(shard) else {
            return;
        };
        self.drop_lease(shard, false).await;
        let me = self.parts.config.worker_id.clone();
        match self.parts.table.hand_over(shard, &me, &to).await {
            Ok(true) => {
                tracing::info!(shard, to = %to, "lease handed over");
                self.parts.telemetry.leases_given.increment(1);
            }
            Ok(false) => tracing::debug!(shard, "lease moved before it was handed over"),
            Err(e) => {
                tracing::warn!(shard, error = %e, "handing a lease over failed; it will expire")
            }
        }
    }
}
