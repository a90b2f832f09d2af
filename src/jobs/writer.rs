//! The result writer every transport of a process shares: ends of runs
//! are written in groups, fenced per job.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{JobFinish, Store, StoreError};

/// Writes the ends of runs in groups, for every task of a process that
/// finishes jobs: whatever arrived while one group was being written goes
/// in the next transaction ([`Store::finish_all`]), so under load many jobs
/// share one commit, and a lone job waits for nobody. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResultWriter {
    tx: mpsc::Sender<Commit>,
}

/// One end on its way to the writer, and where its answer goes.
#[derive(Debug)]
struct Commit {
    end: JobFinish,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl ResultWriter {
    /// Most ends written in one transaction.
    const MAX_GROUP: usize = 64;

    /// A writer for `store`, about `capacity` writes deep, and the future
    /// that does the writing; it ends once every handle is dropped. Two
    /// groups are in progress at a time: while one commits, the next is
    /// gathered and sent, so a job that ends during a commit does not wait
    /// for that commit and then its own in turn.
    pub fn new(store: Store, capacity: usize) -> (ResultWriter, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::channel::<Commit>(capacity.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let write_groups = |store: Store, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Commit>>>| async move {
            let mut group = Vec::with_capacity(Self::MAX_GROUP);
            loop {
                // The lock is held only while gathering, not while writing.
                let gathered = rx.lock().await.recv_many(&mut group, Self::MAX_GROUP).await;
                if gathered == 0 {
                    return;
                }
                let (ends, replies): (Vec<JobFinish>, Vec<_>) =
                    group.drain(..).map(|c| (c.end, c.reply)).unzip();
                let written = store.finish_all(&ends).await;
                for (reply, result) in replies.into_iter().zip(written) {
                    let _ = reply.send(result);
                }
            }
        };
        let one = write_groups(store.clone(), rx.clone());
        let two = write_groups(store, rx);
        let writing = async move {
            tokio::join!(one, two);
        };
        (ResultWriter { tx }, writing)
    }

    /// Records one end, fenced (see [`Store::finish_all`]): true when this
    /// write was the one recorded, false when the token was stale or the
    /// job had already ended.
    pub async fn write(&self, end: JobFinish) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        // The writer lives as long as any handle, so it is gone only if it
        // died.
        self.tx
            .send(Commit { end, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use tokio::task::JoinSet;

    use crate::store::{JobEnd, JobResult};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_result_writer_answers_every_end_and_stops_with_its_last_handle() {
        use crate::store::{JobSource, NewJob};
        let store = Store::connect("sqlite::memory:").await.expect("store");
        for n in 0..40 {
            store
                .enqueue(&NewJob {
                    service: "S".into(),
                    operation: "O".into(),
                    correlation_id: format!("c-{n}"),
                    payload: "<a/>".into(),
                    idempotency_key: None,
                    source: JobSource::Requests,
                    tenant: None,
                })
                .await
                .expect("enqueue");
        }
        let claimed = store
            .claim_many("w", Duration::from_secs(60), 40)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 40);
        let (writer, writing) = ResultWriter::new(store.clone(), 4);
        let writing = tokio::spawn(writing);
        let mut ends = JoinSet::new();
        for (n, c) in claimed.into_iter().enumerate() {
            let writer = writer.clone();
            // Every fifth end carries a stale token and must be refused.
            let stale = n % 5 == 0;
            ends.spawn(async move {
                let end = JobFinish {
                    id: c.job.id,
                    token: if stale { c.token - 1 } else { c.token },
                    end: JobEnd::Done(JobResult {
                        payload: format!("<r>{n}</r>"),
                        model: None,
                        input_tokens: None,
                        output_tokens: None,
                        columns: Vec::new(),
                    }),
                    reply_to: None,
                };
                (stale, writer.write(end).await.expect("written"))
            });
        }
        while let Some(joined) = ends.join_next().await {
            let (stale, recorded) = joined.expect("task");
            assert_eq!(recorded, !stale);
        }
        let counts = store.job_counts().await.expect("counts");
        assert_eq!((counts.done, counts.running), (32, 8));
        drop(writer);
        tokio::time::timeout(Duration::from_secs(5), writing)
            .await
            .expect("the writer stops once its handles are gone")
            .expect("writer task");
    }
}
