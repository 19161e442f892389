//! `GET` on the gateway's plain-HTTP admin listener, as a monitoring system would.

/// `GET path` on the admin listener at `addr` (`host:port`): the whole answer as text.
pub async fn admin_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("admin write");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("admin read");
    answer
}
