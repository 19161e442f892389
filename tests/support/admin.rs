//! `GET` on the gateway's plain-HTTP admin listener, as a monitoring system would.

/// `GET path` on the admin listener at `addr` (`host:port`): the whole answer as text.
pub async fn admin_get(addr: &str, path: &str) -> String {
    admin_get_with(addr, path, &[]).await
}

/// [`admin_get`] with more request headers (`name: value` lines).
pub async fn admin_get_with(addr: &str, path: &str, headers: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let headers: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").as_bytes())
        .await
        .expect("admin write");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("admin read");
    answer
}
