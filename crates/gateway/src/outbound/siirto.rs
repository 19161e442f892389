//! `protocol = "siirto"`: Siirto's own source endpoint, `GET {base_url}/records/{sub}` with
//! `X-Siirto-Transfer` (CONTRACT.md, "Source and destination endpoints").
//!
//! Owns: that request and what its answers mean — 200 the record, 404 not known, 5xx (and the
//! 1xx/3xx/other 2xx a source has no business sending) try again, any other 4xx a permanent
//! refusal. The student id is in the path, percent-encoded; it is in no error or log line.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use siirto_core::student_id::StudentId;

use super::{
    Answer, Fetched, RequestError, SourceCall, TRANSFER_HEADER, encode_path_segment, http_request,
};

/// Siirto's own `GET /records/{sub}`.
pub struct Siirto;

impl SourceCall for Siirto {
    fn request(
        &self,
        base_url: &str,
        subject: &StudentId,
        transfer_id: &str,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        let uri = format!(
            "{base_url}/records/{}",
            encode_path_segment(subject.as_str())
        );
        http_request(
            Method::GET,
            &uri,
            &[
                (TRANSFER_HEADER, transfer_id),
                ("accept", "application/xml"),
            ],
            Bytes::new(),
        )
    }

    fn classify(&self, answer: Answer<'_>, _subject: &StudentId) -> Fetched {
        classify(answer.status, answer.body)
    }
}

fn classify(status: StatusCode, body: &Bytes) -> Fetched {
    let code = status.as_u16();
    match code {
        200 => Fetched::Found(body.clone()),
        404 => Fetched::NotFound,
        _ if status.is_client_error() => Fetched::Refused {
            status: code,
            detail: String::new(),
        },
        _ => Fetched::Unavailable {
            status: code,
            detail: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_the_contract_says() {
        let table: &[(u16, &str, bool)] = &[
            (200, "found", false),
            (404, "source_not_found", false),
            (400, "source_refused", false),
            (401, "source_refused", false),
            (403, "source_refused", false),
            (410, "source_refused", false),
            (500, "source_unavailable", true),
            (503, "source_unavailable", true),
            (204, "source_unavailable", true),
            (301, "source_unavailable", true),
        ];
        let body = Bytes::from_static(b"<x/>");
        for (status, code, retryable) in table {
            let fetched = classify(StatusCode::from_u16(*status).expect("status"), &body);
            match fetched.into_result("turku", &body) {
                Ok(b) => assert_eq!((*code, b), ("found", body.clone())),
                Err(e) => {
                    assert_eq!(e.code(), *code, "{status}");
                    assert_eq!(e.retryable(), *retryable, "{status}");
                    assert_eq!(e.participant(), "turku");
                    assert_eq!(e.status(), Some(*status));
                }
            }
        }
    }

    #[test]
    fn the_request_is_a_get_of_the_encoded_id() {
        let subject = StudentId::parse("131052-308T").expect("valid");
        let request = Siirto
            .request("https://turku.example:9443", &subject, "t-1")
            .expect("request");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/records/131052-308T");
        assert_eq!(request.headers()[TRANSFER_HEADER], "t-1");
    }
}
