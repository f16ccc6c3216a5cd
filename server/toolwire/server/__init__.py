"""The toolwire server: a gRPC sidecar that streams LLM output and runs the tool loop with the client."""
