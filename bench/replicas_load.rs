//! Load generator for `bench/replicas.sh`: client-credentials requests for
//! one client, spread round-robin over several authd replicas, from
//! CONCURRENCY tasks, for SECONDS; prints per-second counts of what was
//! admitted (200), refused (429), failed on the server (5xx) or failed
//! otherwise (connection errors, other statuses), then the totals.
//!
//! Usage: `replicas_load SECONDS CONCURRENCY CLIENT_ID SECRET URL...`
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default, Clone, Copy)]
struct Second {
    admitted: u64,
    refused: u64,
    server_errors: u64,
    other: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: replicas_load SECONDS CONCURRENCY CLIENT_ID SECRET URL...");
        std::process::exit(2);
    }
    let seconds: u64 = args[1].parse().expect("SECONDS");
    let concurrency: usize = args[2].parse().expect("CONCURRENCY");
    let id = args[3].clone();
    let secret = args[4].clone();
    let urls: Arc<Vec<String>> = Arc::new(args[5..].iter().map(|u| format!("{u}/token")).collect());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let seconds_seen = Arc::new(Mutex::new(vec![Second::default(); seconds as usize + 1]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, urls, id, secret, seen, next) = (
            http.clone(),
            urls.clone(),
            id.clone(),
            secret.clone(),
            seconds_seen.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let url = &urls[n % urls.len()];
                let result = http
                    .post(url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                let second = (start.elapsed().as_secs() as usize).min(seconds as usize);
                let mut seen = seen.lock().unwrap();
                let slot = &mut seen[second];
                match result.map(|r| r.status().as_u16()) {
                    Ok(200) => slot.admitted += 1,
                    Ok(429) => slot.refused += 1,
                    Ok(500..=599) => slot.server_errors += 1,
                    _ => slot.other += 1,
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seconds_seen.lock().unwrap();
    let mut total = Second::default();
    for (second, counts) in seen.iter().enumerate() {
        println!(
            "second {second:>3}: admitted {:>4} refused {:>6} 5xx {:>3} other {:>3}",
            counts.admitted, counts.refused, counts.server_errors, counts.other
        );
        total.admitted += counts.admitted;
        total.refused += counts.refused;
        total.server_errors += counts.server_errors;
        total.other += counts.other;
    }
    println!(
        "total: admitted {} refused {} 5xx {} other {}",
        total.admitted, total.refused, total.server_errors, total.other
    );
}
