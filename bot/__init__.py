"""The running service: settings, scheduling, market data, alert formatting, state, outbox and sinks."""
