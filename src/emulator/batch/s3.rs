//! The S3 side of a batch job: `s3://` URIs, the input records read (and
//! checked) from every `.jsonl` object under the input URI, and the output
//! objects written under `{output}/{jobId}/`. Any S3 the SDK reaches will
//! do; the tests run moto's server.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

/// `s3://bucket/key`: a bucket and a key or key prefix (maybe empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Uri {
    pub(crate) bucket: String,
    pub(crate) key: String,
}

impl S3Uri {
    /// Parses an `s3://` URI; the error says what is wrong, as the
    /// ValidationException's message.
    pub(crate) fn parse(uri: &str) -> Result<S3Uri, String> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            return Err(format!(
                "{uri} is not a valid S3 URI: it must start with s3://"
            ));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!("{uri} is not a valid S3 URI: invalid bucket name"));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The key of `name` under this URI taken as a folder.
    pub(crate) fn join(&self, name: &str) -> String {
        let prefix = self.key.trim_end_matches('/');
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }
}

/// The S3 client of an emulator: at `endpoint_url` with static keys (what
/// tests and moto want), or from the standard AWS chain
/// (`AWS_ENDPOINT_URL_S3`, the usual keys and region). Path-style
/// addressing either way, which every S3 emulator understands.
pub(crate) async fn client(endpoint_url: Option<&str>) -> Client {
    let config = match endpoint_url {
        Some(url) => aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(super::REGION))
            .credentials_provider(Credentials::new(
                "emulator",
                "emulator",
                None,
                None,
                "soapgate-emulator",
            ))
            .endpoint_url(url)
            .force_path_style(true)
            .build(),
        None => {
            let shared = aws_config::load_defaults(BehaviorVersion::latest()).await;
            let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true);
            if shared.region().is_none() {
                builder = builder.region(Region::new(super::REGION));
            }
            builder.build()
        }
    };
    Client::from_conf(config)
}

/// One input record: its id and its `modelInput`, as written.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) record_id: String,
    pub(crate) model_input: Value,
}

/// One `.jsonl` object of the input and its records, in file order.
#[derive(Debug, Clone)]
pub(crate) struct InputFile {
    /// The object's key below the input URI (its file name for a single
    /// object): the output object is `{output}/{jobId}/{name}.out`.
    pub(crate) name: String,
    pub(crate) records: Vec<Record>,
}

/// Reads every `.jsonl` object the input URI names (one object, or all
/// below a prefix) and checks each record. The error is the
/// ValidationException's message.
pub(crate) async fn read_input(client: &Client, uri: &S3Uri) -> Result<Vec<InputFile>, String> {
    let keys = if uri.key.ends_with(".jsonl") {
        vec![uri.key.clone()]
    } else {
        list_jsonl(client, uri).await?
    };
    if keys.is_empty() {
        return Err(format!(
            "No .jsonl input files were found at s3://{}/{}",
            uri.bucket, uri.key
        ));
    }
    let mut files = Vec::with_capacity(keys.len());
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        let object = client
            .get_object()
            .bucket(&uri.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Unable to read s3://{}/{key}: {}",
                    uri.bucket,
                    DisplayErrorContext(&e)
                )
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| format!("Unable to read s3://{}/{key}: {e}", uri.bucket))?
            .into_bytes();
        let records = parse_records(&key, &bytes)?;
        for r in &records {
            if !seen.insert(r.record_id.clone()) {
                return Err(format!(
                    "The input contains the recordId {} more than once",
                    r.record_id
                ));
            }
        }
        let name = if key == uri.key {
            key.rsplit('/').next().unwrap_or(&key).to_string()
        } else {
            key[uri.key.len()..].trim_start_matches('/').to_string()
        };
        files.push(InputFile { name, records });
    }
    Ok(files)
}

async fn list_jsonl(client: &Client, uri: &S3Uri) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(&uri.bucket)
        .prefix(&uri.key)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "Unable to list s3://{}/{}: {}",
                uri.bucket,
                uri.key,
                DisplayErrorContext(&e)
            )
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(".jsonl"))
                .map(str::to_string),
        );
    }
    keys.sort();
    Ok(keys)
}

/// The records of one JSONL object: each non-blank line an object with a
/// string `recordId` and an object `modelInput`.
pub(crate) fn parse_records(key: &str, bytes: &[u8]) -> Result<Vec<Record>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{key} is not UTF-8 text"))?;
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{key} line {}", index + 1);
        let value: Value = serde_json::from_str(line)
            .map_err(|e| format!("{at} is not a valid JSON record: {e}"))?;
        let Some(object) = value.as_object() else {
            return Err(format!("{at} is not a JSON object"));
        };
        let record_id = match object.get("recordId") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(format!("{at} has no recordId string")),
        };
        let model_input = match object.get("modelInput") {
            Some(input @ Value::Object(_)) => input.clone(),
            _ => return Err(format!("{at} has no modelInput object")),
        };
        records.push(Record {
            record_id,
            model_input,
        });
    }
    Ok(records)
}

/// Writes one output object.
pub(crate) async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "Unable to write s3://{bucket}/{key}: {}",
                DisplayErrorContext(&e)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_parsed_and_joined() {
        let uri = S3Uri::parse("s3://my-bucket/out/").unwrap();
        assert_eq!(uri.bucket, "my-bucket");
        assert_eq!(uri.join("job1/a.jsonl.out"), "out/job1/a.jsonl.out");
        let root = S3Uri::parse("s3://my-bucket").unwrap();
        assert_eq!(
            root.join("job1/manifest.json.out"),
            "job1/manifest.json.out"
        );
        assert!(S3Uri::parse("https://my-bucket/x").is_err());
        assert!(S3Uri::parse("s3://B/x").is_err());
    }

    #[test]
    fn records_need_an_id_and_a_model_input() {
        let ok = parse_records("a.jsonl", b"{\"recordId\":\"r1\",\"modelInput\":{}}\n\n").unwrap();
        assert_eq!(ok.len(), 1);
        for bad in [
            "not json",
            "[1]",
            "{\"modelInput\":{}}",
            "{\"recordId\":\"r1\"}",
            "{\"recordId\":\"r1\",\"modelInput\":\"text\"}",
        ] {
            let err = parse_records("a.jsonl", bad.as_bytes()).unwrap_err();
            assert!(err.contains("a.jsonl line 1"), "{err}");
        }
    }
}
