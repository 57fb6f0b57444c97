//! Listener budgets against a real `berth serve`: idle connections (that
//! never send a byte) cannot starve the API or the proxy, because each
//! listener closes its oldest connection when full and closes idle ones
//! after the header timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `berth serve` on the fake engine with the API and the proxy on free
/// ports and small budgets; its API and proxy addresses.
fn serve(state: &std::path::Path) -> (std::process::Child, SocketAddr, SocketAddr) {
    let log = state.join("berth.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--engine", "fake", "--dns-listen", "off", "--listen", "127.0.0.1:0"])
        .args(["--proxy-listen", "127.0.0.1:0", "--proxy-max-connections", "300", "--api-max-connections", "50"])
        .args(["--header-timeout", "2s", "--state-dir"])
        .arg(state.join("state"))
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("berth serve");
    let mut child = child;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let address = |marker: &str| -> Option<SocketAddr> {
            text.split(marker).nth(1)?.split_whitespace().next()?.trim_start_matches("http://").parse().ok()
        };
        if let (Some(api), Some(proxy)) = (address("REST API on "), address("HTTP proxy on ")) {
            return (child, api, proxy);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status line of a bodiless GET of `path` on a new connection.
fn get(address: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

/// Whether the server closed `stream` (a read sees the end, or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn idle_connections_cannot_starve_the_api_or_the_proxy() {
    let state = tempfile::tempdir().unwrap();
    let (mut berth, api, proxy) = serve(state.path());
    // Five times the proxy's budget and six times the API's, all idle.
    let mut idle: Vec<TcpStream> =
        (0..1500).map(|_| TcpStream::connect(proxy).expect("connect to the proxy")).collect();
    idle.extend((0..300).map(|_| TcpStream::connect(api).expect("connect to the API")));
    std::thread::sleep(Duration::from_millis(300));
    // New clients are still served: the proxy answers (404: no route), the
    // API answers /healthz.
    let started = Instant::now();
    assert_eq!(get(proxy, "/").expect("the proxy answers"), "HTTP/1.1 404 Not Found");
    assert_eq!(get(api, "/healthz").expect("the API answers"), "HTTP/1.1 200 OK");
    eprintln!("both answered {:?} after 1,800 idle connections", started.elapsed());
    // Idle connections are closed after the header timeout (2 s), the
    // oldest already to make room.
    std::thread::sleep(Duration::from_secs(4));
    let still_open = idle.iter_mut().map(closed).filter(|c| !c).count();
    assert_eq!(still_open, 0, "{still_open} idle connections were never closed");
    berth.kill().unwrap();
    berth.wait().unwrap();
}
