//! A small HTTP/1.1 client with keep-alive, enough for load-driving the daemon's API without
//! pulling an HTTP stack into the benchmarks.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One persistent connection.
#[derive(Debug)]
pub struct Conn {
    addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

impl Conn {
    /// Connects to `addr` (`host:port`).
    pub fn open(addr: &str) -> io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_owned(),
            reader: BufReader::new(s.try_clone()?),
            writer: s,
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
        let body = body.unwrap_or("");
        let project = project
            .map(|p| format!("X-Project-Id: {p}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{project}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.writer.write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut buf = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        } else {
            buf.resize(length, 0);
            self.reader.read_exact(&mut buf)?;
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    }
}

/// The value of `"key": "value"` in a JSON text (first occurrence), without a JSON parser.
pub fn json_str<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let rest = body.split_once(&pat)?.1.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split_once('"').map(|(v, _)| v)
}
