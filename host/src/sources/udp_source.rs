//! [`UdpSource`]: `type = "udp"`: NDJSON datagrams, one or more lines each, until shutdown.
//!
//! After each wake-up the socket is drained without waiting (`try_recv_from`) and a chunk is
//! sent as soon as nothing more is ready (or the chunk is full), so a sensor's lone datagram
//! is not held back until others arrive.

use std::net::SocketAddr;

use arrow_schema::SchemaRef;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::chunk_sender::ChunkSender;
use super::ndjson_decoder::NdjsonDecoder;
use super::schema_infer;
use super::{SchemaOrigin, Source, SourceContext, SourceError, SourceReport};
use crate::config::UdpSourceConfig;

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;

/// A bound UDP socket and the declared schema.
#[derive(Debug)]
pub(crate) struct UdpSource {
    name: String,
    listen: SocketAddr,
    socket: std::net::UdpSocket,
    schema: SchemaRef,
    max_datagram: usize,
}

impl UdpSource {
    /// Binds `listen` (so a port in use is reported before anything starts) and declares the
    /// schema.
    ///
    /// # Errors
    /// No declared schema, or the address cannot be bound.
    pub(crate) fn open(name: &str, cfg: &UdpSourceConfig) -> Result<Self, SourceError> {
        let schema = schema_infer::declared(name, &cfg.schema)?.ok_or_else(|| {
            SourceError::schema(
                name,
                "a UDP source needs schema.columns (there is no sample to infer from)",
            )
        })?;
        let io = |action, e| SourceError::io(name, cfg.listen.to_string(), action, e);
        let socket = std::net::UdpSocket::bind(cfg.listen).map_err(|e| io("bind", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io("make non-blocking", e))?;
        Ok(Self {
            name: name.to_owned(),
            listen: cfg.listen,
            socket,
            schema,
            max_datagram: cfg
                .max_datagram
                .unwrap_or(MAX_DATAGRAM)
                .clamp(1, MAX_DATAGRAM),
        })
    }

    /// The bound address (the actual port when the config asked for port 0).
    #[cfg(test)]
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    async fn run(self, ctx: SourceContext) -> Result<SourceReport, SourceError> {
        let Self {
            name,
            listen,
            socket,
            schema,
            max_datagram,
        } = self;
        let input = listen.to_string();
        let io = |action, e| SourceError::io(&name, &input, action, e);
        let socket = UdpSocket::from_std(socket).map_err(|e| io("register", e))?;
        let local = socket.local_addr().map_err(|e| io("read the address", e))?;
        tracing::info!(source = %name, address = %local, "listening for NDJSON datagrams");
        let mut sender = ChunkSender::new(ctx);
        let mut decoder = NdjsonDecoder::new(schema, sender.batch_rows())
            .map_err(|e| SourceError::schema(&name, e.to_string()))?;
        // One byte more than accepted, to see a datagram that is too long.
        let mut buf = vec![0u8; max_datagram + 1];
        let mut last_peer: Option<SocketAddr> = None;
        let shutdown = sender.shutdown().clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ready = socket.readable() => ready.map_err(|e| io("wait", e))?,
            }
            while !shutdown.is_cancelled() {
                let (n, peer) = match socket.try_recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // E.g. an ICMP error for an earlier send on some stacks: not fatal.
                        tracing::warn!(source = %name, error = %e, "receiving a datagram failed");
                        break;
                    }
                };
                sender.read_bytes(n as u64);
                if last_peer != Some(peer) {
                    decoder.set_origin(&format!("udp {peer}"), false);
                    last_peer = Some(peer);
                }
                let full = if n > max_datagram {
                    let reason =
                        format!("datagram longer than max_datagram ({max_datagram} bytes)");
                    decoder.reject(&buf[..max_datagram], 0, reason)
                } else {
                    let mut full = false;
                    for line in buf[..n].split(|b| *b == b'\n') {
                        full |= decoder.push_line(line, 0);
                    }
                    full
                };
                if full {
                    emit(&name, &input, &mut decoder, &mut sender).await?;
                }
            }
            // Nothing more ready.
            emit(&name, &input, &mut decoder, &mut sender).await?;
        }
        emit(&name, &input, &mut decoder, &mut sender).await?;
        Ok(sender.finish())
    }
}

/// Sends what the decoder holds.
async fn emit(
    name: &str,
    input: &str,
    decoder: &mut NdjsonDecoder,
    sender: &mut ChunkSender,
) -> Result<(), SourceError> {
    let chunk = decoder
        .take_chunk()
        .map_err(|e| SourceError::format(name, input, e.to_string()))?;
    match chunk {
        Some(chunk) => sender.send(chunk).await,
        None => Ok(()),
    }
}

impl Source for UdpSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn schema_origin(&self) -> SchemaOrigin {
        SchemaOrigin::Declared
    }

    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn start(self: Box<Self>, ctx: SourceContext) -> JoinHandle<Result<SourceReport, SourceError>> {
        tokio::spawn(self.run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchemaConfig;
    use crate::sources::test_support::{chunks_with, context, rejected, rows};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datagrams_become_rows_promptly() {
        let cfg = UdpSourceConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_datagram: Some(64),
            schema: SchemaConfig {
                columns: Some(vec!["id: utf8".into(), "v: float64?".into()]),
                infer_rows: 1000,
            },
        };
        let source = UdpSource::open("src", &cfg).unwrap();
        let address = source.local_addr().unwrap();
        assert!(address.ip().is_loopback());
        let dir = tempfile::tempdir().unwrap();
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = Box::new(source).start(ctx);

        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = format!("udp {}", client.local_addr().unwrap());
        // A lone reading arrives on its own.
        client
            .send_to(b"{\"id\":\"s1\",\"v\":1.5}\n", address)
            .unwrap();
        assert_eq!(rows(&chunks_with(&mut rx, 1).await), ["s1|1.5"]);
        // Several lines in one datagram, one bad, the last without a newline.
        client
            .send_to(
                b"{\"id\":\"s2\"}\n{\"v\":2}\n{\"id\":\"s3\",\"v\":3}",
                address,
            )
            .unwrap();
        let chunks = chunks_with(&mut rx, 3).await;
        assert_eq!(rows(&chunks), ["s2|null", "s3|3.0"]);
        assert_eq!(
            rejected(&chunks),
            [(
                peer.clone(),
                r#"column "id" is missing (it is not nullable)"#.into()
            )]
        );
        // Too long.
        client.send_to(&[b' '; 100], address).unwrap();
        let chunks = chunks_with(&mut rx, 1).await;
        assert_eq!(
            rejected(&chunks),
            [(peer, "datagram longer than max_datagram (64 bytes)".into())]
        );
        shutdown.cancel();
        let report = task.await.unwrap().unwrap();
        assert_eq!((report.rows, report.rejected), (3, 2));
    }

    #[test]
    fn needs_a_declared_schema() {
        let cfg = UdpSourceConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_datagram: None,
            schema: SchemaConfig::default(),
        };
        let e = UdpSource::open("src", &cfg).unwrap_err().to_string();
        assert!(e.contains("schema.columns"), "{e}");
    }
}
