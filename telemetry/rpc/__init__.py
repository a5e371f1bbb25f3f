"""The transport-facing layer: call model, concern chain, and the four interceptor adapters."""
