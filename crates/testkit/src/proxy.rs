//! A TCP proxy that a test can cut and restore, to simulate a database or
//! broker outage without disturbing the shared servers or parallel tests;
//! and a rewriting proxy that puts bytes on the wire that no well-behaved
//! client would send (a poison message's properties).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream` (host:port).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let upstream = upstream.to_string();
        let (d, c, st) = (Arc::clone(&down), Arc::clone(&conns), Arc::clone(&stalled));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let up = upstream.clone();
                let st = Arc::clone(&st);
                let h = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&up).await {
                        let (ri, wi) = inbound.into_split();
                        let (ro, wo) = outbound.into_split();
                        tokio::join!(pump(ri, wo, Arc::clone(&st)), pump(ro, wi, st));
                    }
                });
                c.lock().unwrap().push(h.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            port,
            down,
            stalled,
            conns,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes on every connection, which stay open: the
    /// peer waits for an answer that does not come (a hung server, a
    /// black-holed route), no error anywhere.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Forwards again what a [`Proxy::stall`] held up.
    pub fn unstall(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding each chunk while `stalled` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

/// Listens on 127.0.0.1 and forwards to `upstream`, replacing every `from`
/// in the client's bytes with `to` (the same length, so frame sizes stay
/// right): a publisher sends a marker, the broker receives, say, a
/// `message_id` that is not UTF-8. Returns the port; runs for the test.
pub async fn rewriting(upstream: &str, from: &'static [u8], to: &'static [u8]) -> u16 {
    assert_eq!(from.len(), to.len(), "a rewrite must keep the length");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = upstream.to_string();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut in_r, mut in_w) = inbound.into_split();
            let (mut out_r, mut out_w) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
            });
            tokio::spawn(async move {
                // Holds back the last `from.len() - 1` bytes, so a marker
                // split across two reads is still found.
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let read = in_r.read(&mut buf);
                    let read = if pending.is_empty() {
                        read.await
                    } else {
                        // The client paused: the held-back tail holds no
                        // marker's start that more bytes could complete.
                        let pause = std::time::Duration::from_millis(5);
                        match tokio::time::timeout(pause, read).await {
                            Ok(r) => r,
                            Err(_) => {
                                let tail = std::mem::take(&mut pending);
                                if out_w.write_all(&tail).await.is_err() {
                                    break;
                                }
                                continue;
                            }
                        }
                    };
                    let n = match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    replace_all(&mut pending, from, to);
                    let keep = (from.len() - 1).min(pending.len());
                    let ready: Vec<u8> = pending.drain(..pending.len() - keep).collect();
                    if out_w.write_all(&ready).await.is_err() {
                        break;
                    }
                }
                let _ = out_w.write_all(&pending).await;
            });
        }
    });
    port
}

fn replace_all(data: &mut [u8], from: &[u8], to: &[u8]) {
    let mut i = 0;
    while i + from.len() <= data.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}
