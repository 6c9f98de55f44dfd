"""Always-on processes (REST API, stream consumer, dashboard): they use tasks and adapters, never flows or ops."""
