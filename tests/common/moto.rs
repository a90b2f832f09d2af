//! moto's server (a real S3 and SQS emulator), one per test on a free port,
//! killed on drop. A missing `moto_server` follows the missing-peer rule
//! ([`peer_missing`]): it fails under `SOAPGATE_REQUIRE_PEERS=1`, otherwise
//! the test says so and skips.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::app::peer_missing;

/// A moto server of this test's own; killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Moto {
    /// Starts `moto_server` on a free port and waits until it answers.
    /// `None` (after the missing-peer rule) when moto is not installed.
    pub(crate) fn start(test: &str) -> Option<Moto> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                peer_missing(
                    test,
                    &format!("moto_server ({e}); pip install 'moto[server]'"),
                );
                return None;
            }
        };
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("{test}: moto_server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{test}: moto_server did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// An S3 client of this moto (static test keys, path-style) with
    /// `bucket` created.
    pub(crate) async fn s3_with_bucket(&self, bucket: &str) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .endpoint_url(&self.url)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("moto creates the bucket");
        s3
    }
}
