//! The store over TLS. A PostgreSQL URL with `sslmode=require` connects
//! encrypted — the server's own `pg_stat_ssl` says so for the store's
//! connections — and the queue works over it; `sslmode=verify-full`
//! checks the server's certificate, so the machine's self-signed one is
//! refused at connect. (The server must have `ssl = on`, as Debian's
//! PostgreSQL has with its snakeoil certificate; a server without is a
//! missing peer.)

use std::time::Duration;

use soapgate::store::{JobSource, NewJob, Store};

use crate::common::db::{Kind, TestDb, server_url};

/// Whether the server has TLS switched on.
async fn server_speaks_tls() -> bool {
    let url = server_url(Kind::Postgres);
    let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await else {
        return false;
    };
    let ssl: Option<String> = sqlx::query_scalar("SHOW ssl")
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten();
    ssl.as_deref() == Some("on")
}

/// `url` with `param` added to its query.
fn with_param(url: &str, param: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{param}")
}

#[tokio::test]
async fn postgres_urls_with_sslmode_connect_encrypted_and_verify_the_server() {
    let test = "postgres_urls_with_sslmode_connect_encrypted_and_verify_the_server";
    let Some(db) = TestDb::create(Kind::Postgres, test).await else {
        return;
    };
    if !server_speaks_tls().await {
        crate::common::app::peer_missing(test, "PostgreSQL with ssl = on");
        return;
    }
    let store = Store::connect(&with_param(&db.url, "sslmode=require"))
        .await
        .expect("the store connects with sslmode=require");
    let id = store
        .enqueue(&NewJob {
            service: "InvoiceService".into(),
            operation: "ClassifyInvoice".into(),
            correlation_id: "tls-1".into(),
            payload: "<x/>".into(),
            idempotency_key: None,
            source: JobSource::Api,
            tenant: None,
        })
        .await
        .expect("enqueue over TLS");
    let claimed = store
        .claim("tls-worker", Duration::from_secs(30))
        .await
        .expect("claim over TLS")
        .expect("the job");
    assert_eq!(claimed.job.id, id);
    // The server's view of the store's connections to this database.
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server_url(Kind::Postgres))
        .await
        .expect("admin connection");
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_ssl");
    assert!(encrypted >= 1, "no encrypted connection to {name}");
    assert_eq!(plain, 0, "a plain connection to {name}");
    store.close().await;

    let refused = Store::connect(&with_param(&db.url, "sslmode=verify-full")).await;
    let error = refused.expect_err("a self-signed server certificate is not trusted");
    let text = format!("{error:#}").to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("tls"),
        "the refusal names the certificate: {text}"
    );
}
