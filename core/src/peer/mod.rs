//! Agent-to-agent transport: Noise over TCP with MyCHIPs framing.
