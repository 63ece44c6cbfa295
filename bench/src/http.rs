//! The HTTP client of the harness, the integration tests and the load drivers: `ureq` with
//! keep-alive, every status answered as a response (a 4xx is a result to check, not an error).

use std::io;
use std::time::Duration;

use ureq::Agent;

/// Waits until something listens at `addr` (`host:port`), trying every 20 ms for `within`;
/// false when nothing did.
pub fn wait_listening(addr: &str, within: Duration) -> bool {
    let end = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(addr).is_err() {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A client of one API address; its connections are kept alive between requests.
#[derive(Debug, Clone)]
pub struct Conn {
    base: String,
    agent: Agent,
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
    headers: Vec<(String, String)>,
}

impl Response {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.body))
    }
}

impl Conn {
    /// A client of `addr` (`host:port`). Connects on the first request.
    pub fn open(addr: &str) -> io::Result<Conn> {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            // The daemon answers itself: no proxy from the environment, no redirect followed
            // (a 301 is a result to check).
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(4)
            .build()
            .into();
        Ok(Conn {
            base: format!("http://{addr}"),
            agent,
        })
    }

    /// Sends a request (JSON body if any) and reads the whole response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        self.request_as(method, path, body, None)
    }

    /// As [`Conn::request`], as a v2.0 project (`X-Project-Id`) when one is given.
    pub fn request_as(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        project: Option<&str>,
    ) -> io::Result<Response> {
        let headers: &[(&str, &str)] = match project {
            Some(p) => &[("X-Project-Id", p)],
            None => &[],
        };
        self.send(method, path, body, headers)
    }

    /// Sends a request with extra headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = match body {
            Some(b) => self
                .agent
                .run(req.body(b.to_owned()).map_err(io::Error::other)?),
            None => self.agent.run(req.body(()).map_err(io::Error::other)?),
        }
        .map_err(io::Error::other)?;
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(io::Error::other)?;
        Ok(Response {
            status: resp.status().as_u16(),
            body,
            headers,
        })
    }
}

/// A lean keep-alive client for read-throughput runs: one TCP connection, the request bytes
/// built once, the response read with no header map and no copies beyond the body. A load
/// driver whose own cost per request is small leaves the machine's cores to the server it
/// measures (as `wrk` does); use [`Conn`] for anything that checks what it gets.
#[derive(Debug)]
pub struct RawGet {
    stream: std::io::BufReader<std::net::TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl RawGet {
    /// Connects to `addr` (`host:port`) for repeated `GET path` requests.
    pub fn connect(addr: &str, path: &str) -> io::Result<RawGet> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
        Ok(RawGet {
            stream: std::io::BufReader::with_capacity(64 * 1024, stream),
            request: request.into_bytes(),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends the request once and reads the whole answer: its status; the body stays in
    /// [`RawGet::body`]. Only `Content-Length` framing is understood (what the daemon sends).
    pub fn get(&mut self) -> io::Result<u16> {
        use std::io::{BufRead, Read, Write};
        self.stream.get_mut().write_all(&self.request)?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        self.line.clear();
        if self.stream.read_line(&mut self.line)? == 0 {
            return Err(bad("the connection closed"));
        }
        let status = self
            .line
            .trim_end()
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut length = None;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or_else(|| bad("no Content-Length"))?;
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body)?;
        Ok(status)
    }

    /// The body of the last answer.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The `id` of the resource a create or show answered (`{"network": {"id": ...}}`).
pub fn id_of(body: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    v.as_object()
        .and_then(|o| o.values().next())
        .and_then(|r| r.get("id"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lean_client_reads_answers_by_content_length_over_one_connection() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            // Two requests on the one connection: a reason phrase, then none; then it closes.
            for answer in [
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                "HTTP/1.1 404\r\nContent-Length: 3\r\n\r\nno!",
            ] {
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                assert!(line.starts_with("GET /x HTTP/1.1\r\n"), "{line}");
                w.write_all(answer.as_bytes()).unwrap();
            }
        });
        let mut c = RawGet::connect(&addr, "/x").unwrap();
        assert_eq!(c.get().unwrap(), 200);
        assert_eq!(c.body(), b"{}");
        assert_eq!(c.get().unwrap(), 404);
        assert_eq!(c.body(), b"no!");
        server.join().unwrap();
        // The server has gone: an error (a closed connection or a reset), never a status.
        assert!(c.get().is_err());
    }

    #[test]
    fn id_of_reads_the_resource_id() {
        assert_eq!(
            id_of(r#"{"network": {"name": "n", "id": "abc"}}"#).unwrap(),
            "abc"
        );
        assert!(id_of(r#"{"networks": []}"#).is_err());
        assert!(id_of("not json").is_err());
    }
}
