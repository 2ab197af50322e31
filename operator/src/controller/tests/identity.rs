//! Agent identity on every transport (issue 24, finding 5): the bearer
//! token says "one of the cluster's agents"; an agent's own key, bound to
//! its instance at first contact from that instance's address, says which.
//! Driven through the API's router with the connection's peer as plain HTTP
//! gives it.

use axum::body::Body;
use axum::http::{Method, Request};
use tower::ServiceExt;

use super::*;
use crate::adapters::FleetView;
use crate::api_tls::Peer;
use crate::model::{Instance, InstanceState};

/// Three instances: i-1 at 10.0.0.1, i-2 at 10.0.0.2, i-3 whose address
/// EC2 has not given yet (its DescribeInstances failed).
fn fleet() -> FleetView {
    let at = |id: &str, ip: Option<&str>| Instance {
        id: id.into(),
        state: InstanceState::Running,
        zone: None,
        launch_template: None,
        private_ip: ip.map(str::to_string),
    };
    FleetView {
        instances: vec![
            at("i-1", Some("10.0.0.1")),
            at("i-2", Some("10.0.0.2")),
            at("i-3", None),
        ],
        desired_capacity: 3,
        launch_template: None,
    }
}

/// `route` (`report`, `desired`, `certificate`) for `instance`, from
/// `from` over plain HTTP, showing `key`: the status and the body.
async fn call(
    shared: &Arc<Shared>,
    route: &str,
    instance: &str,
    from: &str,
    key: Option<&str>,
) -> (u16, String) {
    let mut report = report_of(&cluster(3), "i-1");
    report.instance = instance.into();
    let body = match route {
        "report" => serde_json::to_vec(&report).unwrap(),
        "certificate" => br#"{"csr": "not a csr"}"#.to_vec(),
        _ => Vec::new(),
    };
    let method = match route {
        "desired" => Method::GET,
        _ => Method::POST,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/v1/agents/{instance}/{route}?after=0"))
        .header("authorization", format!("Bearer {}", shared.token));
    if let Some(key) = key {
        request = request.header(crate::controller::AGENT_KEY_HEADER, key);
    }
    let mut request = request.body(Body::from(body)).unwrap();
    request.extensions_mut().insert(Peer {
        address: from.parse().unwrap(),
        node: None,
        over_tls: false,
    });
    let response = crate::api::router(shared.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(start_paused = true)]
async fn agent_identity_on_plain_http_an_agent_speaks_only_for_its_own_instance() {
    let b = cluster(3);
    let (mut ctl, _fleet) = controller_of(&b, "").await;
    ctl.reconcile().await.unwrap();
    let shared = ctl.shared.clone();
    shared.snapshot(fleet());

    // The token alone: refused, naming the key it lacks.
    let (status, body) = call(&shared, "report", "i-1", "10.0.0.1", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("x-zkop-agent-key"), "{body}");

    // i-2's agent (or any holder of the token) cannot be i-1's first contact.
    let (status, body) = call(&shared, "report", "i-1", "10.0.0.2", Some("k2")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("from its own address"), "{body}");

    // i-1's agent, from i-1's address: bound; answered.
    assert_eq!(
        call(&shared, "report", "i-1", "10.0.0.1", Some("k1"))
            .await
            .0,
        204
    );

    // Another key for i-1 from anywhere else: refused on every agent route,
    // the certificate route included (TLS on with the API still on HTTP).
    for route in ["report", "desired", "certificate"] {
        let (status, body) = call(&shared, route, "i-1", "10.0.0.2", Some("k2")).await;
        assert_eq!(status, 403, "{route}: {body}");
        assert!(body.contains("another key"), "{route}: {body}");
    }
    // i-1's own key is its credential wherever it comes from.
    assert_eq!(
        call(&shared, "report", "i-1", "10.0.0.9", Some("k1"))
            .await
            .0,
        204
    );

    // Fail closed: an instance whose address is not known yet is not
    // believed from anywhere.
    let (status, body) = call(&shared, "report", "i-3", "10.0.0.3", Some("k3")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not known yet"), "{body}");

    // An agent whose data directory was made anew shows a new key from its
    // own address: bound again, and said so.
    assert_eq!(
        call(&shared, "report", "i-1", "10.0.0.1", Some("k1-new"))
            .await
            .0,
        204
    );
    assert!(
        shared
            .status()
            .events
            .iter()
            .any(|e| e.kind == "agent_key_changed" && e.message.contains("i-1")),
        "{:?}",
        shared.status().events
    );
    let (status, _) = call(&shared, "report", "i-1", "10.0.0.9", Some("k1")).await;
    assert_eq!(status, 403, "the old key no longer speaks for i-1");
}
