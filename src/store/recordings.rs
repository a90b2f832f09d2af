//! Recorded calls (`soapgate_recordings`): what a sample of an operation's
//! calls sent and got, kept for `soapgate replay` and for watching a shadow
//! variant agree. Rows are written in groups by the recorder's background
//! task, after their calls answered; the values a mapping redacts are
//! replaced before a row gets here. Pruned by age and by a cap on their
//! number.

use super::{Result, Store, on_backend, on_backend_read};

/// A call to record: everything but the id the database gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecording {
    pub at_ms: i64,
    pub service: String,
    pub operation: String,
    /// [`KIND_SERVED`] or [`KIND_SHADOW`].
    pub kind: &'static str,
    /// The variant that answered; `None` for the operation's own settings.
    pub variant: Option<String>,
    pub correlation_id: String,
    /// Hex SHA-256 of the mapping file that served the call.
    pub mapping_sha256: String,
    /// The request payload: the Body's children as XML.
    pub request_xml: String,
    /// The Converse request sent (the first one; repairs are not kept), as
    /// JSON.
    pub converse_request: String,
    /// The model's last answer (its output message), as JSON.
    pub model_answer: Option<String>,
    /// The response payload, when the call answered one.
    pub response_xml: Option<String>,
    /// The fault code, when the call ended in a fault (a declared fault's
    /// name is kept as `DECLARED:<name>`).
    pub fault_code: Option<String>,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_ms: i64,
    /// Shadow rows: the share of fields agreeing with the served answer.
    pub agreement: Option<f64>,
}

/// The call a caller was answered with.
pub const KIND_SERVED: &str = "served";
/// A variant run beside a served call, never answered to anyone.
pub const KIND_SHADOW: &str = "shadow";

/// A recorded call as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: i64,
    pub at_ms: i64,
    pub service: String,
    pub operation: String,
    pub kind: String,
    pub variant: Option<String>,
    pub correlation_id: String,
    pub mapping_sha256: String,
    pub request_xml: String,
    pub converse_request: String,
    pub model_answer: Option<String>,
    pub response_xml: Option<String>,
    pub fault_code: Option<String>,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_ms: i64,
    pub agreement: Option<f64>,
}

/// Which recordings to read: one operation's, of one kind, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingQuery {
    pub service: String,
    pub operation: String,
    /// [`KIND_SERVED`] or [`KIND_SHADOW`].
    pub kind: &'static str,
    /// Only rows recorded at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// At most this many rows (the oldest of those matching).
    pub limit: Option<u32>,
}

const COLUMNS: &str = "at_ms, service, operation, kind, variant, correlation_id, \
     mapping_sha256, request_xml, converse_request, model_answer, response_xml, fault_code, \
     model, input_tokens, output_tokens, latency_ms, agreement";

impl Store {
    /// Writes recordings, in one transaction.
    pub async fn insert_recordings(&self, rows: &[NewRecording]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        on_backend!(self, |pool, dollar| {
            let sql = super::jobs::numbered(
                dollar,
                &format!(
                    "INSERT INTO soapgate_recordings ({COLUMNS}) VALUES \
                     (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
            );
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(r.at_ms)
                    .bind(r.service.as_str())
                    .bind(r.operation.as_str())
                    .bind(r.kind)
                    .bind(r.variant.as_deref())
                    .bind(r.correlation_id.as_str())
                    .bind(r.mapping_sha256.as_str())
                    .bind(r.request_xml.as_str())
                    .bind(r.converse_request.as_str())
                    .bind(r.model_answer.as_deref())
                    .bind(r.response_xml.as_deref())
                    .bind(r.fault_code.as_deref())
                    .bind(r.model.as_deref())
                    .bind(r.input_tokens)
                    .bind(r.output_tokens)
                    .bind(r.latency_ms)
                    .bind(r.agreement)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// One operation's recordings of one kind, oldest first.
    pub async fn recordings(&self, q: &RecordingQuery) -> Result<Vec<Recording>> {
        let limit = i64::from(q.limit.unwrap_or(u32::MAX));
        let since = q.since_ms.unwrap_or(i64::MIN);
        let rows = on_backend_read!(self, |pool, dollar| {
            let sql = super::jobs::numbered(
                dollar,
                &format!(
                    "SELECT id, {COLUMNS} FROM soapgate_recordings WHERE service = ? \
                     AND operation = ? AND kind = ? AND at_ms >= ? ORDER BY at_ms, id LIMIT ?"
                ),
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(q.service.as_str())
                .bind(q.operation.as_str())
                .bind(q.kind)
                .bind(since)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(read_row).collect::<Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// Deletes recordings older than `before_ms`, then all but the newest
    /// `keep` rows; returns how many went.
    pub async fn prune_recordings(&self, before_ms: i64, keep: u64) -> Result<u64> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        on_backend!(self, |pool, dollar| {
            let aged = sqlx::query(sqlx::AssertSqlSafe(super::jobs::numbered(
                dollar,
                "DELETE FROM soapgate_recordings WHERE at_ms < ?",
            )))
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected();
            // The id of the oldest row to keep; everything before it goes.
            let first_kept: Option<(i64,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(super::jobs::numbered(
                    dollar,
                    "SELECT id FROM soapgate_recordings ORDER BY id DESC LIMIT 1 OFFSET ?",
                )))
                .bind(keep.saturating_sub(1))
                .fetch_optional(pool)
                .await?;
            let capped = match first_kept {
                Some((id,)) if keep > 0 => sqlx::query(sqlx::AssertSqlSafe(super::jobs::numbered(
                    dollar,
                    "DELETE FROM soapgate_recordings WHERE id < ?",
                )))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
                _ if keep == 0 => sqlx::query("DELETE FROM soapgate_recordings")
                    .execute(pool)
                    .await?
                    .rows_affected(),
                _ => 0,
            };
            Ok(aged + capped)
        })
    }
}

fn read_row<R: sqlx::Row>(row: &R) -> Result<Recording>
where
    for<'r> i64: sqlx::Decode<'r, R::Database>,
    i64: sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database>,
    String: sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database>,
    f64: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(Recording {
        id: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        service: row.try_get(2)?,
        operation: row.try_get(3)?,
        kind: row.try_get(4)?,
        variant: row.try_get(5)?,
        correlation_id: row.try_get(6)?,
        mapping_sha256: row.try_get(7)?,
        request_xml: row.try_get(8)?,
        converse_request: row.try_get(9)?,
        model_answer: row.try_get(10)?,
        response_xml: row.try_get(11)?,
        fault_code: row.try_get(12)?,
        model: row.try_get(13)?,
        input_tokens: row.try_get(14)?,
        output_tokens: row.try_get(15)?,
        latency_ms: row.try_get(16)?,
        agreement: row.try_get(17)?,
    })
}
