//! Unit tests of the schema engine on small schemas written for the purpose.

use super::*;
