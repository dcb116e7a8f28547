//! Many workers draining one spec over real TCP: every unit is finished
//! exactly once, none is lost, none is handed to two workers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::*;
use cborrpc::value::as_sequence;
use cborrpc::Value;
use tokio::sync::Mutex;

const UNITS: usize = 10_000;
const WORKERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_workers_drain_ten_thousand_units_exactly_once() {
    let d = Daemon::memory().await;
    let mut c = d.client().await;
    c.ok("set_work_spec", vec![map(&[("name", t("drain"))])]).await;
    for chunk in (0..UNITS).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|n| Value::Array(vec![b(format!("u{n:05}").as_bytes()), map(&[("n", i(*n as i64))])]))
            .collect();
        c.ok("add_work_units", vec![t("drain"), Value::Array(items)]).await;
    }

    let seen: Arc<Mutex<HashMap<Vec<u8>, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let seen = seen.clone();
        let addr = d.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let worker = format!("worker-{w}");
            // Half the workers take one unit at a time, half take batches.
            let max_jobs = if w % 2 == 0 { 1 } else { 7 };
            loop {
                let r = c.ok("get_work", vec![t(&worker), map(&[("max_jobs", i(max_jobs))])]).await;
                let items: Vec<Value> = match as_sequence(&r).unwrap()[0].clone() {
                    Value::Array(list) => list,
                    single => {
                        if as_sequence(&single).unwrap()[0].is_null() {
                            Vec::new()
                        } else {
                            vec![single]
                        }
                    }
                };
                if items.is_empty() {
                    break;
                }
                for item in items {
                    let parts = as_sequence(&item).unwrap();
                    let key = cborrpc::value::string_bytes(&parts[1]).expect("key is a string").to_vec();
                    *seen.lock().await.entry(key.clone()).or_default() += 1;
                    let done =
                        c.ok("update_work_unit", vec![t("drain"), parts[1].clone(), map(&[("status", i(4))])]).await;
                    assert_eq!(done, ok_pair(Value::Bool(true)), "finishing {key:?}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().await;
    assert_eq!(seen.len(), UNITS, "every unit handed out");
    let dupes: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(dupes.is_empty(), "units handed out more than once: {dupes:?}");
    let counts = c.ok("count_work_units", vec![t("drain")]).await;
    assert_eq!(counts, ok_pair(Value::Map(vec![(i(4), i(UNITS as i64))])));
}
