//! Search by photo end to end: ingest, detect, embed, OCR and two index workers on the real
//! services; a catalogue added through the index service's HTTP API, snapshotted to S3 by one
//! index replica and loaded by the other, then queried through both, by upload and by key.
//! The model workers need the models (`models/fetch.sh`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sightline_tests::{Services, Worker, free_port, http_get, http_post_multipart, repo};

/// One clean catalogue photo per product: (catalogue item, fixture).
const CATALOGUE: [(&str, &str); 3] = [
    ("alpro.jpg", "Alpro-Shelf-Soy-Milk/img002.jpg"),
    ("melon.jpg", "Honeydew-Melon/img003.jpg"),
    ("tropicana.jpg", "Tropicana-Apple-Juice/img003.jpg"),
];

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/sample").join(path)).expect("fixture")
}

/// POSTs the carton photo `query` as `carton.jpg` to the search `path` on `api`, checks the
/// answer is 200 (else shows `logs`) and returns it.
fn search_carton(api: SocketAddr, path: &str, query: &[u8], logs: impl Fn() -> String) -> serde_json::Value {
    let (code, body) =
        http_post_multipart(api, path, &[("carton.jpg", query)], Duration::from_secs(120)).expect("search");
    assert_eq!(code, 200, "{body}\n{}", logs());
    json(&body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Waits until the API accepts connections (it connects to the services after binding).
fn wait_api(addr: SocketAddr) {
    let start = Instant::now();
    while http_get(addr, "/v1/openapi.json").is_none_or(|(code, _)| code != 200) {
        assert!(start.elapsed() < Duration::from_secs(60), "search API not up on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_catalogue_added_by_api_is_searched_by_photo_through_the_workers() {
    let services = Services::start();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let addr = api.to_string();
    let _ingest = Worker::start(&services, "ingest", &[]);
    let detect = Worker::start(&services, "detect", &[]);
    let embed = Worker::start(&services, "embed", &[]);
    let ocr = Worker::start(&services, "ocr", &[("PREFETCH", "2")]);
    // Snapshot after every item, checked every second, with a graph from two items: so that
    // the three-item catalogue goes through the stored-snapshot path.
    let snapshots = [("SEARCH_SNAPSHOT_MIN", "1"), ("SEARCH_SNAPSHOT_SECS", "1"), ("SEARCH_ANN_MIN", "2")];
    let index = Worker::start(&services, "index", &[&[("SEARCH_ADDR", addr.as_str())], &snapshots[..]].concat());
    wait_api(api);
    // The bucket outlives the test: a catalogue name of its own.
    let shop = format!("shop-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let logs = || format!("{}\n{}\n{}\n{}", detect.log_text(), embed.log_text(), ocr.log_text(), index.log_text());

    let openapi = json(&http_get(api, "/v1/openapi.json").expect("openapi").1);
    assert!(openapi["paths"]["/v1/search"]["post"].is_object(), "{openapi}");

    // Unknown catalogue: 404 with a JSON error, for stats and for search.
    let (code, body) = http_get(api, &format!("/v1/catalog/{shop}")).expect("stats");
    assert_eq!(code, 404, "{body}");
    assert!(json(&body)["error"].as_str().is_some_and(|e| e.contains(&shop)), "{body}");
    let query = fixture("Tropicana-Apple-Juice/img001.jpg");
    let (code, body) =
        http_post_multipart(api, &format!("/v1/search?catalog={shop}"), &[("q.jpg", &query)], Duration::from_secs(30))
            .expect("search");
    assert_eq!(code, 404, "{body}");

    // The catalogue, through the pipeline.
    let images: Vec<(&str, Vec<u8>)> = CATALOGUE.iter().map(|(name, path)| (*name, fixture(path))).collect();
    let parts: Vec<(&str, &[u8])> = images.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let (code, body) =
        http_post_multipart(api, &format!("/v1/catalog/{shop}/items?wait=true"), &parts, Duration::from_secs(400))
            .expect("add items");
    assert_eq!(code, 200, "{body}\n{}", logs());
    let added = json(&body);
    assert_eq!(added["status"]["outcomes"]["ok"].as_u64(), Some(3), "{added}\n{}", logs());

    let (code, body) = http_get(api, &format!("/v1/catalog/{shop}")).expect("stats");
    assert_eq!(code, 200, "{body}");
    let stats = json(&body);
    assert_eq!((stats["name"].as_str(), stats["items"].as_u64()), (Some(shop.as_str()), Some(3)), "{stats}");
    assert!(stats["dim"].as_u64().is_some_and(|d| d > 0), "{stats}");

    // The replica that took the upload writes a snapshot with its graph to S3 ...
    let start = Instant::now();
    let stats = loop {
        let stats = json(&http_get(api, &format!("/v1/catalog/{shop}")).expect("stats").1);
        if stats["snapshot"]["generation"].as_u64() >= Some(1) && stats["delta"].as_u64() == Some(0) {
            break stats;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no snapshot written: {stats}\n{}", index.log_text());
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!((stats["snapshot"]["items"].as_u64(), stats["snapshot"]["ann"].as_bool()), (Some(3), Some(true)));
    // ... which a second index replica, started afterwards, loads instead of reading the entries.
    let api2: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let addr2 = api2.to_string();
    let index2 = Worker::start(&services, "index", &[&[("SEARCH_ADDR", addr2.as_str())], &snapshots[..]].concat());
    wait_api(api2);
    let stats2 = json(&http_get(api2, &format!("/v1/catalog/{shop}")).expect("stats").1);
    assert_eq!(stats2["snapshot"], stats["snapshot"], "{stats2}\n{}", index2.log_text());
    assert_eq!((stats2["items"].as_u64(), stats2["delta"].as_u64()), (Some(3), Some(0)), "{stats2}");

    // Another photo of the Tropicana carton finds the Tropicana catalogue item first.
    let found = search_carton(api, &format!("/v1/search?catalog={shop}&k=3"), &query, logs);
    assert_eq!(found["query"], "carton.jpg", "{found}");
    let matches = found["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 3, "{found}");
    assert_eq!(matches[0]["item"], "tropicana.jpg", "{found}");
    let scores: Vec<f64> = matches.iter().map(|m| m["score"].as_f64().expect("score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {found}");
    // The query was answered, not indexed.
    assert_eq!(json(&http_get(api, &format!("/v1/catalog/{shop}")).expect("stats").1)["items"].as_u64(), Some(3));

    // The second replica's API answers the same way (either replica's stage may take the job).
    let both_logs = || format!("{}\n{}", logs(), index2.log_text());
    let found2 = search_carton(api2, &format!("/v1/search?catalog={shop}&k=3"), &query, both_logs);
    let items = |f: &serde_json::Value| -> Vec<String> {
        f["matches"].as_array().expect("matches").iter().map(|m| m["item"].as_str().expect("item").to_owned()).collect()
    };
    assert_eq!(items(&found2), items(&found), "{found2}");

    // Search by storage key: a catalogue photo already in the bucket finds itself first.
    let key = format!("uploads/{}/{shop}/melon.jpg", added["job"].as_str().expect("job"));
    let (code, body) =
        http_post_multipart(api, &format!("/v1/search?catalog={shop}&k=2&key={key}"), &[], Duration::from_secs(120))
            .expect("search by key");
    assert_eq!(code, 200, "{body}\n{}", logs());
    let by_key = json(&body);
    assert_eq!(
        (by_key["query"].as_str(), by_key["matches"][0]["item"].as_str()),
        (Some("melon.jpg"), Some("melon.jpg"))
    );
    let (code, body) = http_post_multipart(
        api,
        &format!("/v1/search?catalog={shop}&key=uploads/none/none.jpg"),
        &[],
        Duration::from_secs(30),
    )
    .expect("search by key");
    assert_eq!(code, 404, "{body}");

    // Logo search: a catalogue of two logo images, and the Tropicana photo searched for brands.
    // (detect proposes regions from its crop and text lines, embed embeds each, index ranks
    // brands by their best region plus the brand name read by OCR; docs/logos.md.)
    let brands = format!("{shop}-logos");
    let logos: Vec<(&str, Vec<u8>)> = ["Alpro.png", "Tropicana.png"]
        .iter()
        .map(|n| (*n, std::fs::read(repo().join("tests/fixtures/logos").join(n)).expect("logo fixture")))
        .collect();
    let parts: Vec<(&str, &[u8])> = logos.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let (code, body) = http_post_multipart(
        api,
        &format!("/v1/catalog/{brands}/items?wait=true&mode=logo"),
        &parts,
        Duration::from_secs(300),
    )
    .expect("add logos");
    assert_eq!(code, 200, "{body}\n{}", logs());
    assert_eq!(json(&body)["status"]["outcomes"]["ok"].as_u64(), Some(2), "logos are not filtered as text: {body}");
    let found = search_carton(api, &format!("/v1/search?catalog={brands}&mode=logo&k=2"), &query, logs);
    assert_eq!(found["mode"], "logo", "{found}");
    let matches = found["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 2, "one match per brand: {found}");
    assert_eq!((matches[0]["brand"].as_str(), matches[0]["item"].as_str()), (Some("Tropicana"), Some("Tropicana.png")));
    assert!(matches[0]["box"].as_array().is_some_and(|b| b.len() == 4), "the matching region: {found}");

    // Not an image: 422 with the pipeline's reason.
    let (code, body) = http_post_multipart(
        api,
        &format!("/v1/search?catalog={shop}"),
        &[("notes.jpg", b"these are notes, not a photo")],
        Duration::from_secs(120),
    )
    .expect("search");
    assert_eq!(code, 422, "{body}");
    assert!(json(&body)["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");

    // Requests the API refuses before starting a job.
    let (code, body) =
        http_post_multipart(api, "/v1/search", &[("q.jpg", &query)], Duration::from_secs(10)).expect("search");
    assert_eq!(code, 400, "{body}");
    assert!(json(&body)["error"].is_string(), "{body}");
}
