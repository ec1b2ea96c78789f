"""inbound: raw mail bytes → InboundMail, pure (no store, no I/O). The public API, and its
one export list, is mailgw.inbound.mail: import from there."""
