//! Tallies and chits, in MyCHIPs's own formats (records, canonical JSON,
//! ECDSA P-521 signatures).
