"""Test doubles that speak real network protocols (a fake LLM provider over HTTP/1.1)."""
