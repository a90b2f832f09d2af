//! `GET /soap/{service}?wsdl` and `?xsd={name}`: the contract as published
//! by this facade.

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use super::AppState;
use crate::contract::publish;

pub(crate) async fn get_service(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let snapshot = state.live.snapshot();
    let Some((contract, svc)) = snapshot.contracts.service(&service) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no service named {service}\n"),
        )
            .into_response();
    };
    let base = soap_base(&state, &headers);
    // Query keys are matched case-insensitively: `?WSDL` is common.
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    };
    if get("wsdl").is_some() {
        return xml_response(publish::wsdl(contract, &base, &service));
    }
    if let Some(name) = get("xsd") {
        return match publish::xsd(contract, name, &base, &service) {
            Some(doc) => xml_response(doc),
            None => (StatusCode::NOT_FOUND, format!("no schema named {name}\n")).into_response(),
        };
    }
    let mut page = format!(
        "{} — SOAP endpoint\nWSDL: {base}/{service}?wsdl\n\n",
        svc.name
    );
    for op in &svc.operations {
        page.push_str(&format!("  {}\n", op.name));
    }
    page.into_response()
}

/// The URL prefix under which services live, e.g. `http://host:8080/soap`.
fn soap_base(state: &AppState, headers: &HeaderMap) -> String {
    match &state.settings.public_url {
        Some(url) => format!("{url}/soap"),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(&state.settings.listen);
            let scheme = if state.settings.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}/soap")
        }
    }
}

fn xml_response(doc: String) -> Response {
    ([(CONTENT_TYPE, "text/xml; charset=utf-8")], doc).into_response()
}
