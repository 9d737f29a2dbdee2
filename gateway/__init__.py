"""The gateway: the only public entry (gRPC for partners, HTTP/JSON for the console)."""
