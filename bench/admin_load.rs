//! Load generator for `bench/admin.sh` (issue 18): against a running
//! authd's admin API, creates COUNT clients (POST /admin/v1/clients, one at
//! a time, as automation does), then lists them all page by page ROUNDS
//! times with `limit=PAGE`, and prints the time of the creates and the
//! p50 / p99 / max of one page.
//!
//! Usage: `admin_load ADMIN_URL TOKEN COUNT PAGE ROUNDS`
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: admin_load ADMIN_URL TOKEN COUNT PAGE ROUNDS");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_owned();
    let token = args[2].clone();
    let count: usize = args[3].parse().expect("COUNT");
    let page: usize = args[4].parse().expect("PAGE");
    let rounds: usize = args[5].parse().expect("ROUNDS");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    if count > 0 {
        let started = Instant::now();
        for n in 0..count {
            let response = http
                .post(format!("{base}/admin/v1/clients"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "name": format!("bench client {n}") }))
                .send()
                .await
                .expect("create");
            assert_eq!(response.status(), 201, "create {n}");
        }
        let took = started.elapsed();
        println!(
            "created {count} clients through the API in {:.2} s ({:.2} ms each)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / count as f64
        );
    }

    if rounds == 0 {
        return;
    }
    let mut pages = Vec::new();
    let mut listed = 0;
    for _ in 0..rounds {
        listed = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/admin/v1/clients?limit={page}");
            if let Some(cursor) = &cursor {
                url.push_str("&cursor=");
                url.push_str(cursor);
            }
            let started = Instant::now();
            let response = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("list");
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.expect("a page");
            pages.push(started.elapsed());
            listed += body["items"].as_array().map_or(0, Vec::len);
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
    }
    pages.sort();
    let at = |q: f64| pages[((pages.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "listed {listed} clients {rounds} times, {} pages of {page}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pages.len(),
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        pages.last().unwrap().as_secs_f64() * 1000.0
    );
}
