//! Self-test of the browser test infrastructure (src/browser.rs): Debian's
//! chromedriver and Chromium start and load a page from a tiny local server,
//! axe-core finds the violations of a page built to have them (so the check
//! can fail) and none on a clean page, both served under the workbench's
//! Content-Security-Policy; screenshots are PNGs; dropping the driver ends
//! every browser process it started.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use allegro_testkit::browser::{self, Chromedriver};

/// The workbench's policy (workbench-spec): no inline script, nothing else either.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CLEAN: &str = r#"<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Sauber</title></head>
<body><main><h1>Eine saubere Seite</h1>
<form><label for="name">Name</label><input id="name" name="name">
<button type="submit">Senden</button></form></main></body></html>"#;

/// No lang, an image without alt text, an input without a label.
const BROKEN: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Kaputt</title></head>
<body><main><h1>Eine kaputte Seite</h1><img src="/bild.png">
<form><input id="name" name="name"></form></main></body></html>"#;

/// Serves CLEAN at /sauber and BROKEN at /kaputt (404 otherwise) with the
/// CSP header, on a thread; returns the port.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/sauber" => ("200 OK", CLEAN),
                "/kaputt" => ("200 OK", BROKEN),
                _ => ("404 Not Found", ""),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Security-Policy: {CSP}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn axe_finds_violations_on_a_broken_page_and_none_on_a_clean_one() {
    let port = serve();
    let driver = Chromedriver::start().await;
    let client = driver.session().await;

    client
        .goto(&format!("http://127.0.0.1:{port}/kaputt"))
        .await
        .unwrap();
    assert_eq!(client.title().await.unwrap(), "Kaputt");
    let found = browser::axe(&client).await;
    let ids: Vec<&str> = found.iter().map(|v| v.id.as_str()).collect();
    for rule in ["html-has-lang", "image-alt", "label"] {
        assert!(
            ids.contains(&rule),
            "axe-core missed `{rule}`; found {ids:?}"
        );
    }
    let text = browser::report(&found);
    assert!(
        text.contains("image-alt") && text.contains("<img"),
        "{text}"
    );

    client
        .goto(&format!("http://127.0.0.1:{port}/sauber"))
        .await
        .unwrap();
    browser::assert_accessible(&client, "clean").await;

    // The element helpers and a screenshot.
    browser::fill(&client, "#name", "Erika").await;
    let v = browser::find(&client, "#name").await.prop("value").await;
    assert_eq!(v.unwrap().as_deref(), Some("Erika"));
    let shot = tempfile::NamedTempFile::new().unwrap();
    browser::screenshot(&client, shot.path()).await;
    let png = std::fs::read(shot.path()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 1000, "a PNG of {} bytes", png.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_driver_ends_its_browsers() {
    let driver = Chromedriver::start().await;
    let _client = driver.session().await;
    let group = driver.process_group();
    // SAFETY: kill with signal 0 only checks whether the group exists.
    assert_eq!(unsafe { libc::kill(-group, 0) }, 0, "group alive");
    drop(driver);
    let mut gone = false;
    for _ in 0..100 {
        // SAFETY: as above.
        if unsafe { libc::kill(-group, 0) } != 0 {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(gone, "processes of group {group} survived the drop");
}
