//! Shared pieces of the end-to-end tests: a daemon child process on a free
//! loopback port (killed by PID when dropped) and a small CBOR-RPC client.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cborrpc::{encode_request, Connection, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A `coordinated` child process.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Daemon {
    /// Starts the daemon with extra arguments and waits until it accepts.
    pub fn start(extra: &[&str]) -> Daemon {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coordinated"))
            .arg("--cborrpc")
            .arg(addr.to_string())
            .args(extra)
            .env("COORDINATED_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn coordinated");
        let d = Daemon { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start listening on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal CBOR-RPC client, one request at a time.
pub struct Client {
    pub conn: Connection<TcpStream>,
    next_id: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client { conn: Connection::new(stream, 1 << 30), next_id: 1 }
    }

    /// Calls a method and returns `result` or the error message.
    pub async fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = Vec::new();
        encode_request(id, method, &params, &mut frame);
        self.conn.queue_bytes(&frame);
        self.conn.flush().await.expect("send");
        let resp = self.conn.read_response().await.expect("read").expect("response before EOF").expect("decodable");
        assert_eq!(resp.id, Value::Integer(id.into()), "response id");
        resp.outcome
    }

    /// Calls a method that must succeed.
    pub async fn ok(&mut self, method: &str, params: Vec<Value>) -> Value {
        self.call(method, params).await.unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.get_mut().write_all(bytes).await.unwrap();
    }
}

/// A text string.
pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// A byte string.
pub fn b(s: &[u8]) -> Value {
    Value::Bytes(s.to_vec())
}

/// An integer.
pub fn i(n: i64) -> Value {
    Value::Integer(n.into())
}

/// A map with text keys.
pub fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (t(k), v.clone())).collect())
}

/// `[value, null]`.
pub fn ok_pair(v: Value) -> Value {
    Value::Array(vec![v, Value::Null])
}

/// Parses spaced hex.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|x| u8::from_str_radix(x, 16).unwrap()).collect()
}
