//! `GET /v1/openapi.json` (CONTRACT.md, "X-Road: OpenAPI"): every participant, over mutual TLS,
//! reads the OpenAPI 3.1 description of the API, and it is `docs/openapi.yaml` as JSON (the
//! unit tests of `http::openapi` keep the document and the routes in step).

use serde_json::Value;

use crate::helpers::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_reads_the_openapi_document_as_json() {
    let bed = start().await;
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"),
    )
    .expect("docs/openapi.yaml");
    let expected = siirto_gateway::http::openapi::parse(&yaml).expect("the document parses");
    for participant in ["eservice", "espoo", "turku", "registry-operator"] {
        let answer = bed
            .client(participant)
            .expect("client")
            .get("/v1/openapi.json", &[])
            .await
            .expect("answer");
        assert_eq!(answer.status.as_u16(), 200, "{participant}");
        let body: Value = answer.json();
        assert_eq!(body, expected, "{participant} reads the document");
        assert_eq!(body["openapi"], "3.1.0");
    }
    bed.stop().await;
}
