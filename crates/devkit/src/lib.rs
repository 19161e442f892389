pub mod client;
pub mod demo;
pub mod eservice;
pub mod peers;
pub mod pki;
pub mod testbed;
