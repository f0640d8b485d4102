"""rtrec's WebSocket layer: one trio transport over websockets' sans-I/O protocol
(``ws``), and TLS for local servers (``tls``), for every rtrec server and client."""
