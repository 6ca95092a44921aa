//! Tally tickets: the MyCHIPs invite link and the `notch:` deep link.
