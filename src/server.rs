//! The CBOR-RPC listener: one task per connection, requests on a
//! connection served in order, replies to pipelined requests written
//! together.
//!
//! Bad input never takes the daemon down: a frame that is intact but is
//! not a valid request gets an error reply when its id can be read, and
//! anything that leaves the stream out of sync (malformed CBOR, a frame
//! over the size cap, a peer that vanishes mid-frame) closes that one
//! connection. A handler that panics answers `internal error: ...` and the
//! connection goes on. Shutdown stops accepting, lets each connection
//! finish the request it is executing and flush its replies, then returns.
//!
//! One client cannot hold the daemon's resources: replies queued past
//! `max_pending_reply` bytes are written before anything more is read from
//! that client (so a client that never reads stalls only itself), and
//! connections past `max_connections` are closed as soon as accepted.
//!
//! Each served connection counts as open in the job server's metrics
//! while its task runs; a request whose handler panicked is counted there
//! too (the job server records every other request itself).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::Coordinate;
use cborrpc::{Connection, Request, Value};
use futures_util::FutureExt;
use jobserver::{ErrorKind, JobServer, Method, RpcError, RpcResult};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Requests at least this large run on a blocking thread.
const HEAVY_REQUEST: usize = 32 * 1024;

/// Settings of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// Unsent reply bytes after which a connection is flushed before it
    /// reads again.
    pub max_pending_reply: usize,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Log every request at info level.
    pub log_requests: bool,
}

/// Serves `listener` until `shutdown` completes, then drains connections.
pub async fn serve<C: Coordinate>(
    listener: TcpListener,
    jobs: Arc<JobServer<C>>,
    cfg: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut conns = JoinSet::new();
    let trimmer = tokio::spawn(crate::limits::trim_heap_forever());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        debug!(%peer, "connection opened");
                        let conn = handle(stream, jobs.clone(), cfg, stop_rx.clone());
                        conns.spawn(async move {
                            conn.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        warn!(%peer, max_connections = cfg.max_connections, "too many connections; closing the new one");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Usually out of file descriptors: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    info!(connections = conns.len(), "shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
        warn!("connections still busy after 30 s; closing them");
        conns.shutdown().await;
    }
    trimmer.abort();
}

async fn handle<C: Coordinate>(
    stream: TcpStream,
    jobs: Arc<JobServer<C>>,
    cfg: ServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let _open = jobs.metrics().open_connection();
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut conn = Connection::new(stream, cfg.max_frame);
    // One future for the whole connection: registering a fresh one per
    // request cost as much as a tenth of a small request's own work.
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = conn.read_request() => r,
        };
        match next {
            Ok(None) => break,
            Err(e) => {
                warn!(?peer, error = %e, "closing connection");
                break;
            }
            Ok(Some(Err(bad))) => match bad.id {
                Some(id) => {
                    warn!(?peer, error = %bad.message, "bad request");
                    conn.queue_response(&id, Err(&bad.message));
                }
                None => {
                    warn!(?peer, error = %bad.message, "unidentifiable request; closing connection");
                    break;
                }
            },
            Ok(Some(Ok(req))) => {
                let heavy = conn.last_frame_len() >= HEAVY_REQUEST;
                let Request { id, method, params } = req;
                let outcome = call(&jobs, method, &id, params, heavy, cfg.log_requests).await;
                let message = outcome.as_ref().err().map(ToString::to_string);
                conn.queue_response(&id, outcome.as_ref().map_err(|_| message.as_deref().unwrap_or_default()));
            }
        }
        // Write when the client may be waiting for these replies, or when
        // they pass the budget: a client that pipelines without reading
        // then blocks this task (only) until it reads.
        let must_write = conn.pending_bytes() >= cfg.max_pending_reply || !conn.has_buffered_frame();
        if must_write {
            // Let every other connection with a request ready handle it
            // first, so the replies go out back to back at the end of the
            // scheduler's turn, as Redis writes its replies before it
            // sleeps. A client then finds several replies per wake-up, and
            // the daemon wakes sleeping clients less often: in paired
            // drains it cut the daemon's CPU per unit at every W tried,
            // most at W=64 (the commit that added it has the figures).
            tokio::task::yield_now().await;
            if conn.flush().await.is_err() {
                return;
            }
        }
    }
    let _ = conn.flush().await;
    debug!(?peer, "connection closed");
}

/// Runs one request on the job server (the one place the server calls
/// it), turning a panic into an error reply, and logs the outcome.
async fn call<C: Coordinate>(
    jobs: &Arc<JobServer<C>>,
    method: String,
    id: &Value,
    params: Vec<Value>,
    heavy: bool,
    log_requests: bool,
) -> RpcResult<Value> {
    let started = log_requests.then(Instant::now);
    let caught = if heavy {
        // A big request (say, 1,000 units to add) takes milliseconds of
        // CPU; run it on a blocking thread so small requests on other
        // connections keep flowing. This connection waits for it, so its
        // replies stay in order.
        let (jobs, method) = (jobs.clone(), method.clone());
        let runtime = Handle::current();
        let run = tokio::task::spawn_blocking(move || {
            let out = runtime.block_on(AssertUnwindSafe(jobs.call(&method, params)).catch_unwind());
            crate::limits::note_heavy_request();
            out
        });
        // A panic is caught inside; a join error is the task's own panic.
        run.await.unwrap_or_else(|e| Err(Box::new(e.to_string())))
    } else {
        AssertUnwindSafe(jobs.call(&method, params)).catch_unwind().await
    };
    let outcome = caught.unwrap_or_else(|panic| {
        let why = panic_message(panic.as_ref());
        error!(%method, panic = %why, "request handler panicked");
        jobs.metrics().record_panic(Method::from_snake(&jobserver::wire::snake(&method)));
        Err(RpcError::Internal(why))
    });
    if let Some(t) = started {
        let micros = t.elapsed().as_micros() as u64;
        match &outcome {
            Ok(_) => info!(%method, ?id, ok = true, micros, "request"),
            Err(e) => info!(%method, ?id, ok = false, micros, error = %e, "request"),
        }
    }
    match &outcome {
        // The operator's business: the storage failed (a panic is logged
        // above).
        Err(e) if e.kind() == ErrorKind::Unavailable => warn!(%method, error = %e, "request failed"),
        // The client's business: bad parameters, an unknown spec...
        Err(e) => debug!(%method, error = %e, "request refused"),
        Ok(_) => {}
    }
    outcome
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
