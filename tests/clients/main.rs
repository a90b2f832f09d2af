//! Real SOAP clients no one here wrote (zeep, PHP SoapClient, JAX-WS, suds),
//! generated from the facade's `?wsdl` and calling it.

#[path = "../common/mod.rs"]
mod common;

mod real_clients;
mod suds_wsdl;
mod tenant_clients;
