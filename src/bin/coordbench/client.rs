//! A minimal CBOR-RPC client, one request in flight at a time, as the
//! Python client behaves.

use cborrpc::value::{as_sequence, string_bytes};
use cborrpc::{encode_request, Connection, Value};
use tokio::net::TcpStream;

/// An error talking to the daemon (I/O, framing, or an RPC error reply).
pub type Error = String;

pub struct Client {
    conn: Connection<TcpStream>,
    next_id: u64,
    frame: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Client { conn: Connection::new(stream, 1 << 30), next_id: 1, frame: Vec::with_capacity(256) })
    }

    /// The id the next request will carry (for pre-encoded frames).
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Calls a method; `Err` on I/O trouble or an error reply.
    pub async fn call(&mut self, method: &str, params: &[Value]) -> Result<Value, Error> {
        let id = self.take_id();
        self.frame.clear();
        encode_request(id, method, params, &mut self.frame);
        self.conn.queue_bytes(&self.frame);
        self.finish(id, method).await
    }

    /// Sends a frame encoded beforehand with id `id` (from [`Client::take_id`]).
    pub async fn call_encoded(&mut self, id: u64, frame: &[u8], method: &str) -> Result<Value, Error> {
        self.conn.queue_bytes(frame);
        self.finish(id, method).await
    }

    async fn finish(&mut self, id: u64, method: &str) -> Result<Value, Error> {
        self.conn.flush().await.map_err(|e| format!("{method}: send failed: {e}"))?;
        let resp = match self.conn.read_response().await {
            Ok(Some(Ok(r))) => r,
            Ok(Some(Err(e))) => return Err(format!("{method}: undecodable response: {e}")),
            Ok(None) => return Err(format!("{method}: daemon closed the connection")),
            Err(e) => return Err(format!("{method}: {e}")),
        };
        match &resp.id {
            Value::Integer(i) if i128::from(*i) == id as i128 => {}
            other => return Err(format!("{method}: response id {other:?}, expected {id}")),
        }
        resp.outcome.map_err(|e| format!("{method}: {e}"))
    }
}

/// Unwraps a `[value, message]` pair, failing on a non-null message.
pub fn unpair(method: &str, v: Value) -> Result<Value, Error> {
    match v {
        Value::Array(mut items) if items.len() == 2 => {
            let msg = items.pop().unwrap();
            let val = items.pop().unwrap();
            match msg {
                Value::Null => Ok(val),
                Value::Text(m) => Err(format!("{method}: {m}")),
                other => Err(format!("{method}: unexpected message {other:?}")),
            }
        }
        other => Err(format!("{method}: expected [value, message], got {other:?}")),
    }
}

/// One unit handed out by `get_work`.
pub struct Grant {
    pub spec: String,
    pub key: Vec<u8>,
}

fn grant(item: &Value) -> Result<Option<Grant>, Error> {
    let parts = as_sequence(item).ok_or_else(|| format!("get_work: item is not a tuple: {item:?}"))?;
    if parts.len() < 2 {
        return Err(format!("get_work: short item {item:?}"));
    }
    if parts[0].is_null() && parts[1].is_null() {
        return Ok(None);
    }
    let spec = string_bytes(&parts[0]).ok_or_else(|| format!("get_work: bad spec name {:?}", parts[0]))?;
    let key = string_bytes(&parts[1]).ok_or_else(|| format!("get_work: bad key {:?}", parts[1]))?;
    Ok(Some(Grant { spec: String::from_utf8_lossy(spec).into_owned(), key: key.to_vec() }))
}

/// Parses a `get_work` result (already unpaired). With `max_jobs` 1 the
/// answer is one tuple `(spec, key, data)` or `(None, None, None)`; with
/// more it is a list of such tuples. The shape is recognised from the
/// value, so either form is accepted whatever was asked.
pub fn grants(result: &Value, out: &mut Vec<Grant>) -> Result<(), Error> {
    out.clear();
    if result.is_null() {
        return Ok(());
    }
    let items = as_sequence(result).ok_or_else(|| format!("get_work: unexpected result {result:?}"))?;
    let single = items.first().is_some_and(|first| as_sequence(first).is_none());
    if single {
        out.extend(grant(result)?);
    } else {
        for item in items {
            out.extend(grant(item)?);
        }
    }
    Ok(())
}
