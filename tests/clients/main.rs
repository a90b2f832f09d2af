//! Real SOAP clients no one here wrote — zeep, suds, PHP SoapClient, JAX-WS
//! (wsimport), node soap, Perl SOAP::Lite, .NET (Mono's wsdl) and gSOAP —
//! generated from or loading the facade's `?wsdl` and calling it.

#[path = "../common/mod.rs"]
mod common;

mod intake_clients;
mod matrix;
mod reads;
mod real_clients;
mod stacks;
mod suds_wsdl;
mod tenant_clients;
